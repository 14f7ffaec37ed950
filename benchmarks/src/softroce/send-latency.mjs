// softroce 8-byte SEND ping-pong round trips (p50/p99) against a raw node:dgram ping-pong of
// the same datagram (24 bytes: BTH, 8 bytes, ICRC) on loopback, the echo in a peer process.
// Two softroce variants, both reported:
// - ib_send_lat style (the target): how RDMA latency is measured (perftest's ib_send_lat):
//   raw postSend, unsignaled but every 16th, receives posted ahead, the echo polled from the
//   CQ; both QPs of QoS class `latency` (completions notified in a microtask) on devices with
//   `lazyAcks` and `timers.ackDelayMs` 20 (unsignaled SENDs ask for no ACK; the responder ACKs
//   every 16 packets, the signaled one, or after 20 ms), so nearly every round trip is the two
//   datagrams the baseline sends too;
// - promise API (informative, no target): `qp.send()` signaled and awaited with the echo's
//   `qp.recv()`: each round trip needs 4 datagrams (SEND, its ACK, the echo SEND, its ACK), and
//   the echo's side sends the ACK and the echo back to back, so expect about twice the baseline.
// The ib_send_lat style also runs on the unbatched socket path (RDMA_SESSION_SOFTROCE_BATCH=off,
// its own pair of devices), interleaved, to show what batched socket I/O costs a ping-pong.
// Rounds alternate the variants (ROUNDS short rounds of ITERS round trips: a shared VM's speed
// drifts within minutes, and short alternating rounds expose all three to the same drift; the
// p99 is then the 240th-worst of 24,000 round trips), after WARMUP round trips of each (the same for all three): the
// first ten thousand softroce round trips run while V8 is still compiling the stack's hot
// paths (on this 2-core VM the compiler threads compete with both processes), which is a
// start-up cost, not the steady-state latency measured here.
// Target: ib_send_lat style p50 and p99 <= 1.5x the datagram ping-pong.
import dgram from 'node:dgram'
import { createContext } from '@rdma-session/core'
import { softroce } from '@rdma-session/provider-softroce'
import { fmt, report } from '../measure.mjs'
import { connectToPeer, localQps, PeerProcess, percentile } from './peer-process.mjs'

const ITERS = Number(process.env.BENCH_PINGPONG_ITERS ?? 2000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 12)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 10000)
const SIGNAL_EVERY = 16
const DEPTH = 64

// ---- baseline: raw datagram ping-pong
const plain = new PeerProcess()
const { port: echoPort } = await plain.call('dgramEcho')
const literal = (host, _o, cb) => cb(null, host, 4)
const udp = dgram.createSocket({ type: 'udp4', lookup: literal })
await new Promise((r) => udp.bind(0, '127.0.0.1', r))
const datagram = Buffer.alloc(24, 1)
async function dgramPingPong(n) {
  const rtts = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await new Promise((resolve) => {
      udp.once('message', resolve)
      udp.send(datagram, echoPort, '127.0.0.1')
    })
    rtts.push(performance.now() - t0)
  }
  return rtts
}

// ---- softroce, promise API, signaled
const ctx = await createContext({ provider: softroce({ port: 0 }) })
const opened = await plain.call('open', { regionBytes: 1 << 20, qps: [{}] })
const [qp] = localQps(ctx, 1)
await connectToPeer(plain, ctx, [qp], opened)
await plain.call('echo', { qp: 0, bytes: 8, depth: DEPTH, signalEvery: 1 })
const mr = ctx.registerMemory(Buffer.alloc(1 << 16))
const out = mr.slice(0, 8)
async function promisePingPong(n) {
  const rtts = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    const echoed = qp.recv(mr.slice(64, 8)).then(() => performance.now())
    await qp.send(out)
    rtts.push((await echoed) - t0)
  }
  return rtts
}

// ---- softroce, ib_send_lat style: latency-class QPs, lazyAcks devices, unsignaled sends,
// receives posted ahead
const LAZY_OPTIONS = { lazyAcks: true, timers: { ackDelayMs: 20 } }
const LATENCY_QP = { qos: { class: 'latency' } }
const BATCH_SWITCH = 'RDMA_SESSION_SOFTROCE_BATCH'
/** A latency pair (this side and a peer process), both opened with batched socket I/O or without (`batch` false). */
async function openLazy(batch) {
  const saved = process.env[BATCH_SWITCH]
  if (batch) delete process.env[BATCH_SWITCH]
  else process.env[BATCH_SWITCH] = 'off'
  try {
    const peer = new PeerProcess() // forked now: inherits the switch
    const c = await createContext({ provider: softroce({ port: 0, ...LAZY_OPTIONS }) })
    const opened = await peer.call('open', { options: LAZY_OPTIONS, regionBytes: 1 << 20, qps: [LATENCY_QP] })
    const [q] = localQps(c, 1, undefined, LATENCY_QP)
    await connectToPeer(peer, c, [q], opened)
    await peer.call('echo', { qp: 0, bytes: 8, depth: DEPTH, signalEvery: SIGNAL_EVERY })
    const m = c.registerMemory(Buffer.alloc(1 << 16))
    // Like perftest, the WRs are built once (SGEs, not slices: no conversion per post) and posted again.
    const sge = [m.slice(0, 8).toSge()]
    const sendWr = { wrId: 0, opcode: 'SEND', sgList: sge, signaled: false }
    const signaledSendWr = { ...sendWr, signaled: true }
    const recvWrs = Array.from({ length: DEPTH }, (_, k) => ({ wrId: k, sgList: [m.slice(64 + k * 8, 8).toSge()] }))
    const cq = q.sendCq
    let posted = 0
    for (const wr of recvWrs) q.postRecv(wr)
    const pingPong = async (n) => {
      const rtts = []
      for (let i = 0; i < n; i++) {
        const t0 = performance.now()
        q.postSend(++posted % SIGNAL_EVERY === 0 ? signaledSendWr : sendWr)
        for (let echoed = false; !echoed;) {
          const wcs = cq.poll(16)
          if (wcs.length === 0) {
            await cq.waitReady()
            continue
          }
          for (const wc of wcs) {
            if (wc.status !== 'SUCCESS') throw new Error(`${wc.opcode} failed: ${wc.status}`)
            if (wc.opcode === 'RECV') {
              echoed = true
              q.postRecv(recvWrs[wc.wrId])
            }
          }
        }
        rtts.push(performance.now() - t0)
      }
      return rtts
    }
    return { peer, ctx: c, pingPong, io: c.device.diagnostics.batchedIo }
  } finally {
    if (saved === undefined) delete process.env[BATCH_SWITCH]
    else process.env[BATCH_SWITCH] = saved
  }
}
const lazyPair = await openLazy(true)
const unbatchedPair = await openLazy(false)
const lazyCtx = lazyPair.ctx
const lazyPingPong = lazyPair.pingPong

await dgramPingPong(WARMUP)
await promisePingPong(WARMUP)
await lazyPingPong(WARMUP)
await unbatchedPair.pingPong(WARMUP)
const all = { dgram: [], promise: [], lazy: [], unbatched: [] }
for (let r = 0; r < ROUNDS; r++) {
  all.dgram.push(...(await dgramPingPong(ITERS)))
  all.promise.push(...(await promisePingPong(ITERS)))
  all.lazy.push(...(await lazyPingPong(ITERS)))
  all.unbatched.push(...(await unbatchedPair.pingPong(ITERS)))
}
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return { p50: percentile(s, 0.5) * 1000, p99: percentile(s, 0.99) * 1000 }
}
const base = stats(all.dgram)
const us = (x) => `${fmt(x, 0)} µs`
const line = (name, st) => `${name}: p50 ${us(st.p50)} (${fmt(st.p50 / base.p50)}x), p99 ${us(st.p99)} (${fmt(st.p99 / base.p99)}x)`
const promise = stats(all.promise)
const lazy = stats(all.lazy)
const unbatched = stats(all.unbatched)
const io = (d) => (d === undefined ? 'node:dgram' : `send ${d.send}, receive ${d.receive}`)
const counters = (c) => `${c.packetsSent} datagrams sent, ${c.acksSent} ACKs`
report('softroce 8-byte SEND ping-pong vs a raw node:dgram ping-pong (loopback, echo in another process)', [
  `baseline dgram ping-pong, 24-byte datagrams: p50 ${us(base.p50)}, p99 ${us(base.p99)} (${ROUNDS} x ${ITERS} round trips per variant, interleaved, after ${WARMUP} to warm up)`,
  line(`ib_send_lat style: latency-class QPs, unsignaled, signaled every ${SIGNAL_EVERY}, lazyAcks, ackDelayMs 20`, lazy),
  `  socket path: ${io(lazyPair.io)}; the same on the unbatched path (${BATCH_SWITCH}=off: ${io(unbatchedPair.io)}): p50 ${us(unbatched.p50)}, p99 ${us(unbatched.p99)}; batched/unbatched p50 ${fmt(lazy.p50 / unbatched.p50)}x, p99 ${fmt(lazy.p99 / unbatched.p99)}x`,
  line('promise API, signaled (4 datagrams per round trip; informative, no target)', promise),
  `datagrams from this side: promise API ${counters(ctx.device.counters)}; ib_send_lat style ${counters(lazyCtx.device.counters)}`,
], { ok: lazy.p50 / base.p50 <= 1.5 && lazy.p99 / base.p99 <= 1.5, text: `ib_send_lat style: p50 ${fmt(lazy.p50 / base.p50)}x, p99 ${fmt(lazy.p99 / base.p99)}x the datagram ping-pong (target <= 1.5x)` })

await plain.call('stopEcho')
await lazyPair.peer.call('stopEcho')
await unbatchedPair.peer.call('stopEcho')
udp.close()
await ctx.close()
await lazyCtx.close()
await unbatchedPair.ctx.close()
await plain.close()
await lazyPair.peer.close()
await unbatchedPair.peer.close()
