#!/usr/bin/env node
// Runs inside the rxe guest (--tap): the verbs side of the cross-provider test. For IPv4 (rxe2
// GID 1, ws port 7471) and IPv6 (GID 2, port 7472) it opens a context on rxe2, exposes a 64 KiB
// region as 'mem', and serves the ws control plane. For every QP of a session a peer opens (first
// and added ones) it posts receives; a SEND 'go:<offset>' makes it RDMA WRITE a pattern into the
// peer's 'mem' at that offset, FETCH_AND_ADD 1 at offset 0 and COMPARE_AND_SWAP at offset 8 of
// the peer's region, READ the peer's bytes back, then SEND back 'done:<sha256 of what it read>'.
// Prints `CROSS-READY` once both listeners are up; runs until the guest is stopped.
import { createHash } from 'node:crypto'
import { createContext } from '@rdma-session/core'
import { verbs } from '../dist/index.js'

const PSK = process.env.CROSS_PSK ?? 'rdma-session cross-provider test'
const access = { access: ['local-write', 'remote-write', 'remote-read', 'remote-atomic'] }
const sha = (b) => createHash('sha256').update(b).digest('hex')
const pattern = (n, seed) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff))

async function serve(fam) {
  const ctx = await createContext({ provider: verbs({ device: 'rxe2', gidIndex: fam === 4 ? 1 : 2 }) })
  const mr = ctx.registerMemory(Buffer.alloc(65536), access)
  const scratch = ctx.registerMemory(Buffer.alloc(65536), access)
  ctx.sessions.expose('mem', mr.region())
  const server = await ctx.listen({ port: fam === 4 ? 7471 : 7472, host: fam === 4 ? '10.77.0.2' : 'fd77::2', auth: { psk: PSK } })
  let slot = 0
  const serveQp = (session, qp) => {
    const mine = slot++ % 16
    const inbox = scratch.slice(mine * 1024, 256)
    const loop = async () => {
      for (;;) {
        let wc
        try {
          wc = await qp.recv(inbox)
        } catch {
          return // QP closed
        }
        const msg = Buffer.from(inbox.bytes.subarray(0, wc.byteLen)).toString()
        const m = /^go:(\d+)$/.exec(msg)
        if (m === null) continue
        const peer = session.remoteRegions.get('mem')
        const off = Number(m[1])
        const out = scratch.slice(16384 + mine * 2048, 1024)
        out.bytes.set(pattern(1024, off & 0xff))
        await qp.write(out, { addr: peer.addr + off, rkey: peer.rkey, length: 1024 })
        const atom = scratch.slice(40960 + mine * 16, 8)
        await qp.fetchAndAdd(atom, { addr: peer.addr, rkey: peer.rkey, length: 8 }, 1n)
        await qp.compareAndSwap(scratch.slice(40960 + mine * 16 + 8, 8), { addr: peer.addr + 8, rkey: peer.rkey, length: 8 }, 0n, BigInt(0x1000 + mine))
        const back = scratch.slice(49152 + mine * 1024, 1024)
        await qp.read(back, { addr: peer.addr + off, rkey: peer.rkey, length: 1024 })
        const reply = scratch.slice(57344 + mine * 256, 69)
        reply.bytes.set(Buffer.from(`done:${sha(back.bytes)}`))
        await qp.send(reply)
      }
    }
    loop().catch((err) => console.error(`cross: QP ${qp.qpn}: ${err?.stack ?? err}`))
  }
  server.on('session', (session) => {
    for (const qp of session.qps) serveQp(session, qp)
    session.on('qp-added', (qp) => serveQp(session, qp))
  })
  console.log(`cross: IPv${fam} verbs peer on rxe2 ${ctx.info.address} (gid ${ctx.info.gid}), ws port ${fam === 4 ? 7471 : 7472}`)
  return ctx
}

await serve(4)
await serve(6)
console.log('CROSS-READY')
setInterval(() => {}, 1 << 30)
