/**
 * The softroce side of the kernel-rxe interop test. Runs inside the rxe-vm guest's network
 * namespace (bundled and started by ../rxe-interop.test.ts under a perl launcher that made the
 * UDP socket with IP_PMTUDISC_DO or UDP_NO_CHECK6_RX), connects a softroce QP to an rc_peer QP
 * on the guest's kernel rxe (rxe2), runs every operation in both directions, and prints one JSON
 * line: { checks: [{ name, ok, detail }], counters, peerCounters }.
 */
import { createHash } from 'node:crypto'
import net from 'node:net'
import { createContext, type RemoteRegion } from '@rdma-session/core'
import { softroce, type SoftRoceDevice } from '../../../src/index.js'
// @ts-ignore: plain ESM helper without types (tools/rxe-vm)
import { RcPeerClient } from '../../../../../tools/rxe-vm/rc-peer-client.mjs'

interface Hello { qpn: number; psn: number; rkey: number; addr: bigint; len: number; gid: Buffer }
interface Peer {
  hello: Hello
  connectQp(p: object): Promise<string>
  sha256(off: number, len: number): Promise<string>
  dump(off: number, len: number): Promise<Buffer>
  set(off: number, bytes: Uint8Array): Promise<string>
  write(loff: number, roff: number, len: number, opts?: object): Promise<string>
  read(loff: number, roff: number, len: number): Promise<string>
  send(loff: number, len: number, opts?: object): Promise<string>
  recv(loff: number, len: number): Promise<string>
  waitRecv(ms?: number): Promise<{ opcode: string; len: number; imm?: number }>
  cas(loff: number, roff: number, compare: bigint, swap: bigint): Promise<bigint>
  fadd(loff: number, roff: number, add: bigint): Promise<bigint>
  counters(): Promise<Record<string, number>>
  quit(): Promise<void>
}

const fam = Number(process.argv[2]) as 4 | 6
const tcpPort = Number(process.argv[3])
const fd = Number(process.env.SOFTROCE_FD)
const me = fam === 4 ? '10.77.0.1' : 'fd77::1'
const guest = fam === 4 ? '10.77.0.2' : 'fd77::2'
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const pattern = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 0xff))

const checks: { name: string; ok: boolean; detail?: string }[] = []
async function check(name: string, fn: () => Promise<boolean | string>): Promise<void> {
  try {
    const r = await fn()
    checks.push(r === true ? { name, ok: true } : { name, ok: false, detail: String(r) })
  } catch (err) {
    checks.push({ name, ok: false, detail: String((err as Error).message ?? err) })
  }
}

const ctx = await createContext({
  // A 16 KiB window: the 60 KB READ below is requested from rxe in pieces of 16 responses.
  provider: softroce({ address: me, windowBytes: 16 * 1024, socket: { fd, pmtudiscDo: fam === 4, noCheck6Rx: fam === 6 }, ...(process.env.SOFTROCE_CAPTURE ? { capture: process.env.SOFTROCE_CAPTURE } : {}) }),
})
const device = ctx.device as SoftRoceDevice
/** rc_peer may still be starting in the guest: retry the TCP connect for a while. */
async function connectPeer(): Promise<net.Socket> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(tcpPort, '10.77.0.2', () => {
          s.off('error', reject)
          resolve(s)
        })
        s.once('error', reject)
      })
    } catch (err) {
      if (attempt > 100) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}
const peer = (await RcPeerClient.open(await connectPeer(), { timeoutMs: 60_000 })) as Peer
const h = peer.hello
const mr = ctx.registerMemory(Buffer.alloc(1 << 20), { access: ['local-write', 'remote-read', 'remote-write', 'remote-atomic'] })
const view = Buffer.from(mr.bytes.buffer, mr.bytes.byteOffset, mr.bytes.length)
const qp = ctx.createQp({ caps: { maxSendWr: 64, maxRecvWr: 64 } })
qp.modify({ state: 'INIT', accessFlags: 15, portNum: 1, pkeyIndex: 0 })
// DSCP 46 / ECN 0 / hop limit 17: with the native send path they are in the IP header, which the
// ICRC masks (TOS / traffic class, TTL / hop limit): rxe must accept the packets all the same.
qp.modify({ state: 'RTR', remote: { address: guest, port: 4791 }, pathMtu: 1024, destQpn: h.qpn, rqPsn: h.psn, maxDestRdAtomic: 16, minRnrTimer: 12, encapsulation: { udpSourcePort: 0, dscp: 46, ecn: 0, hopLimit: 17 } })
qp.modify({ state: 'RTS', sqPsn: qp.localPsn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
const gid = Buffer.from(fam === 4 ? `00000000000000000000ffff${me.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join('')}` : 'fd770000000000000000000000000001', 'hex')
await peer.connectQp({ qpn: qp.qpn, psn: qp.localPsn, gid, rkey: mr.rkey, addr: BigInt(mr.addr), len: mr.length, mtu: 1024 })
const remote = (off: number, length: number): RemoteRegion => ({ addr: Number(h.addr) + off, rkey: h.rkey, length })

await check('the native send path is in use (per-QP DSCP and hop limit on the wire)', async () =>
  device.diagnostics.sendPath === 'native' || `sendPath ${device.diagnostics.sendPath}: ${device.diagnostics.sendPathReason ?? ''}`)
await check('the native receive path is in use (recvmmsg: rxe\'s packets, IPv4 IDs and zero IPv6 checksums included)', async () =>
  device.diagnostics.receivePath === 'native' || `receivePath ${device.diagnostics.receivePath}: ${device.diagnostics.receivePathReason ?? ''}`)
const p1 = pattern(5000, 1)
await check('softroce RDMA_WRITE (5 packets) -> rxe', async () => {
  view.set(p1, 0)
  await qp.write(mr.slice(0, p1.length), remote(100, p1.length))
  return (await peer.sha256(100, p1.length)) === sha(p1) || 'sha256 differs'
})
await check('softroce RDMA_READ (5 responses) <- rxe', async () => {
  await qp.read(mr.slice(10_000, p1.length), remote(100, p1.length))
  return view.subarray(10_000, 10_000 + p1.length).equals(p1) || 'bytes differ'
})
await check('softroce SEND (3 packets, pad) -> rxe receive', async () => {
  await peer.recv(30_000, 4096)
  await qp.send(mr.slice(0, 2999))
  const wc = await peer.waitRecv(10_000)
  return (wc.len === 2999 && (await peer.sha256(30_000, 2999)) === sha(p1.subarray(0, 2999))) || `len ${wc.len}`
})
await check('softroce SEND_WITH_IMM -> rxe', async () => {
  await peer.recv(36_000, 1024)
  await qp.send(mr.slice(0, 61), { imm: 0x12345678 })
  const wc = await peer.waitRecv(10_000)
  return (wc.len === 61 && wc.imm === 0x12345678) || JSON.stringify(wc)
})
await check('softroce RDMA_WRITE_WITH_IMM -> rxe', async () => {
  await peer.recv(0, 16)
  await qp.write(mr.slice(0, 2048), remote(40_000, 2048), { imm: 0xabcdef01 })
  const wc = await peer.waitRecv(10_000)
  return (wc.opcode === 'RECV_RDMA_WITH_IMM' && wc.imm === 0xabcdef01 && (await peer.sha256(40_000, 2048)) === sha(p1.subarray(0, 2048))) || JSON.stringify(wc)
})
await check('rxe SEND (2 packets) -> softroce receive', async () => {
  const recv = qp.recv(mr.slice(100_000, 4096))
  await peer.send(100, 2000)
  const wc = await recv
  return (wc.byteLen === 2000 && view.subarray(100_000, 102_000).equals(p1.subarray(0, 2000))) || `byteLen ${wc.byteLen}`
})
await check('rxe RDMA_WRITE (4 packets) -> softroce memory', async () => {
  await peer.write(100, 200_000, 4000)
  for (let i = 0; i < 200 && !view.subarray(200_000, 204_000).equals(p1.subarray(0, 4000)); i++) await new Promise((r) => setTimeout(r, 10))
  return view.subarray(200_000, 204_000).equals(p1.subarray(0, 4000)) || 'bytes differ'
})
await check('rxe RDMA_WRITE_WITH_IMM -> softroce receive', async () => {
  const recv = qp.recv(mr.slice(0, 0))
  await peer.write(100, 210_000, 100, { imm: 77 })
  const wc = await recv
  return (wc.opcode === 'RECV_RDMA_WITH_IMM' && wc.imm === 77 && wc.byteLen === 100) || JSON.stringify(wc)
})
const p2 = pattern(6000, 2)
await check('rxe RDMA_READ (6 responses) <- softroce memory', async () => {
  view.set(p2, 300_000)
  await peer.read(44_000, 300_000, p2.length)
  return (await peer.sha256(44_000, p2.length)) === sha(p2) || 'sha256 differs'
})
await check('softroce FETCH_ADD and CMP_SWAP on rxe memory', async () => {
  const le = Buffer.alloc(8)
  le.writeBigUInt64LE(1000n)
  await peer.set(56, le)
  await qp.fetchAndAdd(mr.slice(500_000, 8), remote(56, 8), 5n)
  await qp.compareAndSwap(mr.slice(500_008, 8), remote(56, 8), 1005n, 0x1122334455667788n)
  const after = (await peer.dump(56, 8)).readBigUInt64LE(0)
  const a = view.readBigUInt64LE(500_000)
  const b = view.readBigUInt64LE(500_008)
  return (a === 1000n && b === 1005n && after === 0x1122334455667788n) || `orig ${a} ${b}, after ${after}`
})
await check('rxe FETCH_ADD and CMP_SWAP on softroce memory', async () => {
  view.writeBigUInt64LE(77n, 400_000)
  const old1 = await peer.fadd(0, 400_000, 3n)
  const old2 = await peer.cas(8, 400_000, 80n, 9n)
  const now = view.readBigUInt64LE(400_000)
  return (old1 === 77n && old2 === 80n && now === 9n) || `old ${old1} ${old2}, now ${now}`
})
await check('64 KiB WRITE and READ round trip (64 packets each)', async () => {
  const big = pattern(65_536, 3)
  view.set(big, 600_000)
  await qp.write(mr.slice(600_000, 60_000), remote(0, 60_000))
  await qp.read(mr.slice(700_000, 60_000), remote(0, 60_000))
  return view.subarray(700_000, 760_000).equals(big.subarray(0, 60_000)) || 'bytes differ'
})
// rxe's multi-packet WRITE and SEND (full-size last packet) to softroce: their middle packets can be
// taken by softroce's receive runs (socket/receive-run.ts) when they arrive in one receive batch,
// with rxe's hashed IPv4 IDs solved by the helper.
await check('rxe RDMA_WRITE (59 packets) -> softroce memory', async () => {
  const want = pattern(65_536, 3).subarray(0, 60_000)
  await peer.write(0, 800_000, 60_000)
  for (let i = 0; i < 500 && !view.subarray(800_000, 860_000).equals(want); i++) await new Promise((r) => setTimeout(r, 10))
  return view.subarray(800_000, 860_000).equals(want) || 'bytes differ'
})
await check('rxe SEND (8 packets) -> softroce receive', async () => {
  const recv = qp.recv(mr.slice(900_000, 8192 + 64))
  recv.catch(() => undefined) // a failed check reports its detail below instead of an unhandled rejection
  await peer.send(0, 8192)
  const wc = await recv
  return (wc.byteLen === 8192 && view.subarray(900_000, 908_192).equals(pattern(65_536, 3).subarray(0, 8192))) || `byteLen ${wc.byteLen}`
})
await check('rxe RNR NAK (no receive posted), then the SEND completes once one is', async () => {
  const send = qp.send(mr.slice(0, 100))
  // The receive goes up once rxe has refused the SEND (rnrRetry 7 retries for ever): a fixed 50 ms could end
  // before the SEND reached a slow TCG guest, and then there was no RNR NAK to count.
  for (const deadline = performance.now() + 20_000; device.counters.rnrNaksReceived === 0 && performance.now() < deadline;) await new Promise((r) => setTimeout(r, 10))
  await peer.recv(50_000, 1024)
  await send
  const wc = await peer.waitRecv(10_000)
  return (wc.len === 100 && device.counters.rnrNaksReceived > 0) || `len ${wc.len}, RNR NAKs ${device.counters.rnrNaksReceived}`
})
// Last: a remote access error moves the QPs to ERR. IPv4 checks rxe's NAK, IPv6 ours.
if (fam === 4) {
  await check('rxe NAKs a bad rkey: softroce completes REM_ACCESS_ERR', async () => {
    try {
      await qp.write(mr.slice(0, 64), { addr: Number(h.addr), rkey: (h.rkey ^ 0x5a5a5a) >>> 0, length: 64 })
      return 'the WRITE succeeded'
    } catch (err) {
      return (err as { status?: string }).status === 'REM_ACCESS_ERR' || String(err)
    }
  })
} else {
  await check('softroce NAKs a bad rkey: rxe completes REM_ACCESS_ERR, memory untouched', async () => {
    const before = Buffer.from(view)
    try {
      await peer.write(0, 0, 64, { rkey: (mr.rkey ^ 0x5a5a5a) >>> 0 })
      return 'the WRITE succeeded'
    } catch (err) {
      const status = (err as { status?: string }).status
      return (/REMOTE_ACCESS|REM_ACCESS|remote access/i.test(String(status ?? err)) && view.equals(before) && device.counters.drops.accessViolation === 1) || `${String(status)} ${String(err)}`
    }
  })
}
const counters = device.counters.snapshot()
const batchedIo = device.batchedIo
const peerCounters = await peer.counters().catch(() => ({}))
await qp.close()
await peer.quit().catch(() => undefined)
await ctx.close()
process.stdout.write(`${JSON.stringify({ checks, counters, peerCounters, diagnostics: device.diagnostics, batchedIo })}\n`)
process.exit(0)
