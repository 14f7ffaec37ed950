// The softroce side of the cross-provider test. Started by ../cross-provider.test.ts inside the
// rxe guest's netns under a perl launcher that made the UDP socket (IP_PMTUDISC_DO for IPv4,
// UDP_NO_CHECK6_RX for IPv6; fd in SOFTROCE_FD). Opens a session through the ws control plane to
// the verbs peer in the guest (guest/cross-verbs-peer.mjs), adds QPs, runs every operation, and
// prints one JSON line { checks: [{ name, ok, detail }] }.
//   node softroce-side.mjs <4|6>
import { createHash } from 'node:crypto'
import { createContext } from '@rdma-session/core'
// By path, so this package needs no dependency on provider-softroce (its dist must be built).
import { softroce } from '../../../provider-softroce/dist/index.js'

const fam = Number(process.argv[2])
const me = fam === 4 ? '10.77.0.1' : 'fd77::1'
const guest = fam === 4 ? '10.77.0.2' : '[fd77::2]'
const port = fam === 4 ? 7471 : 7472
const PSK = process.env.CROSS_PSK ?? 'rdma-session cross-provider test'
const access = { access: ['local-write', 'remote-write', 'remote-read', 'remote-atomic'] }
const sha = (b) => createHash('sha256').update(b).digest('hex')
const pattern = (n, seed) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff))
const checks = []
async function check(name, fn) {
  try {
    const r = await fn()
    checks.push(r === true ? { name, ok: true } : { name, ok: false, detail: String(r) })
  } catch (err) {
    checks.push({ name, ok: false, detail: String(err?.stack ?? err) })
  }
}

const fd = Number(process.env.SOFTROCE_FD)
const ctx = await createContext({ provider: softroce({ address: me, socket: { fd, pmtudiscDo: fam === 4, noCheck6Rx: fam === 6 } }) })
const mr = ctx.registerMemory(Buffer.alloc(65536), access)
const local = ctx.registerMemory(Buffer.alloc(65536), access)
ctx.sessions.expose('mem', mr.region())

let session
for (let attempt = 0; ; attempt++) {
  try {
    session = await ctx.connect(`ws://${guest}:${port}`, {
      auth: { psk: PSK },
      params: { encryption: 'none', encapsulation: { mtu: 1024 } },
      qps: [{ qos: { class: 'latency', serviceLevel: 3 } }, { qos: { class: 'bulk' } }],
    })
    break
  } catch (err) {
    if (attempt > 100) throw err
    await new Promise((r) => setTimeout(r, 300))
  }
}
const remote = session.remoteRegions.get('mem')
await check('session: 2 QPs, peer exposes mem', () => session.qps.length === 2 && remote !== undefined && remote.length === 65536 || `qps ${session.qps.length}, mem ${JSON.stringify(remote)}`)
await check('encryption requested as required is refused (verbs has no encryption)', async () => {
  try {
    await ctx.connect(`ws://${guest}:${port}`, { auth: { psk: PSK }, params: { encryption: 'aes-256-gcm' }, qps: [{}] })
    return 'an encrypted session was created'
  } catch (err) {
    return err?.code === 'ERR_ENCRYPTION_UNSUPPORTED' || `got ${err?.code}: ${err?.message}`
  }
})
const added = await ctx.sessions.addQps(session.id, [{ qos: { class: 'bulk' } }, { qos: { class: 'bulk', weight: 4 } }], { remote: session.remote })
await check('addQps by session ID: 4 QPs', () => (added.length === 2 && session.qps.length === 4) || `added ${added.length}, qps ${session.qps.length}`)

for (const [i, qp] of session.qps.entries()) {
  const base = i * 8192
  await check(`QP ${i}: RDMA WRITE 4 KiB softroce -> verbs, read back by RDMA READ`, async () => {
    const src = local.slice(base, 4096)
    src.bytes.set(pattern(4096, i + 1))
    await qp.write(src, { addr: remote.addr + 16384 + base, rkey: remote.rkey, length: 4096 })
    const dst = local.slice(base + 4096, 4096)
    await qp.read(dst, { addr: remote.addr + 16384 + base, rkey: remote.rkey, length: 4096 })
    return Buffer.compare(Buffer.from(dst.bytes), pattern(4096, i + 1)) === 0 || 'READ returned other bytes'
  })
  await check(`QP ${i}: RDMA WRITE_WITH_IMM`, async () => {
    const src = local.slice(base, 64)
    await qp.write(src, { addr: remote.addr + 16384 + base, rkey: remote.rkey, length: 64 }, { imm: 0xabcd0000 + i }).catch((e) => { throw e })
    return true
  })
}
// Atomics softroce -> verbs on the peer's word at 0 (FADD) and 8 (CAS).
await check('ATOMIC_FETCH_AND_ADD and CMP_AND_SWP softroce -> verbs', async () => {
  const qp = session.qps[0]
  const a = local.slice(60000, 8)
  await qp.fetchAndAdd(a, { addr: remote.addr + 32, rkey: remote.rkey, length: 8 }, 5n)
  const before = Buffer.from(a.bytes).readBigUInt64LE()
  await qp.fetchAndAdd(a, { addr: remote.addr + 32, rkey: remote.rkey, length: 8 }, 7n)
  const mid = Buffer.from(a.bytes).readBigUInt64LE()
  await qp.compareAndSwap(a, { addr: remote.addr + 32, rkey: remote.rkey, length: 8 }, mid + 7n, 99n)
  const seen = Buffer.from(a.bytes).readBigUInt64LE()
  await qp.read(local.slice(60008, 8), { addr: remote.addr + 32, rkey: remote.rkey, length: 8 })
  const now = Buffer.from(local.slice(60008, 8).bytes).readBigUInt64LE()
  return (mid === before + 5n && seen === mid + 7n && now === 99n) || `before ${before} mid ${mid} seen ${seen} now ${now}`
})
// verbs -> softroce: WRITE, FADD, CAS, READ, SEND, driven by a SEND to each QP.
mr.bytes.fill(0, 0, 16)
for (const [i, qp] of session.qps.entries()) {
  await check(`QP ${i}: SEND softroce -> verbs, then verbs WRITE/FADD/CAS/READ/SEND back`, async () => {
    const inbox = local.slice(61440 + i * 512, 256)
    const reply = qp.recv(inbox)
    const off = 1024 + i * 1024
    await qp.send(Buffer.from(`go:${off}`))
    const wc = await reply
    const msg = Buffer.from(inbox.bytes.subarray(0, wc.byteLen)).toString()
    const wrote = Buffer.from(mr.bytes.subarray(off, off + 1024))
    if (Buffer.compare(wrote, pattern(1024, off & 0xff)) !== 0) return 'the verbs WRITE did not land byte-exact'
    return msg === `done:${sha(wrote)}` || `reply ${msg}`
  })
}
await check('verbs FETCH_AND_ADD x4 and CMP_AND_SWP landed on softroce memory', () => {
  const fadd = mr.bytes.subarray(0, 8)
  const n = Buffer.from(fadd).readBigUInt64LE()
  const cas = Buffer.from(mr.bytes.subarray(8, 16)).readBigUInt64LE()
  return (n === 4n && cas >= 0x1000n && cas < 0x1010n) || `fadd word ${n}, cas word ${cas}`
})
await check('striped session.write of 32 KiB over the bulk QPs', async () => {
  const src = local.slice(0, 32768)
  src.bytes.set(pattern(32768, 77))
  await session.write(src, { addr: remote.addr + 16384, rkey: remote.rkey, length: 32768 }, { class: 'bulk', chunkSize: 4096 })
  const dst = local.slice(32768, 32768)
  await session.qps[0].read(dst, { addr: remote.addr + 16384, rkey: remote.rkey, length: 32768 })
  return Buffer.compare(Buffer.from(dst.bytes), pattern(32768, 77)) === 0 || 'bytes differ'
})
await session.close().catch(() => {})
await ctx.close()
console.log(JSON.stringify({ checks }))
process.exit(0)
