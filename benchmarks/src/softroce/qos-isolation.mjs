// softroce QoS isolation: one session over the ws control plane to a peer process, a
// `latency` QP and a `bulk` QP added to it by session ID. The latency QP's 64-byte RDMA WRITE
// round trips (one at a time) are timed with the link idle, then while the bulk QP floods it
// with 1 MiB WRITEs (4 in flight); for contrast, the same probes on the bulk QP itself.
// What isolates the latency QP (all in provider-softroce, no link rate or pacing is configured:
// the bulk QP sends as fast as the two processes can go):
// - send side: strict priority for QoS class `latency` in the device scheduler (a latency post
//   goes out at once unless a turn is running; turns end after 16 packets or 0.05 ms);
// - the bulk QP's delay-based congestion window (QoS class `bulk`): it keeps the bulk packets in
//   flight at the round-trip floor plus a small queue, instead of the device window's worth
//   queued in the peer's one receive socket in front of the latency packets, and a shorter
//   queue still (congestion.contendedQueueMs) while the latency QP has traffic;
// - receive side: latency-class packets are handled as they are read, other QPs' at the end of
//   the read batch; latency-class QPs ACK at once and notify their completions at once.
// It runs twice: with the default device window (a quarter of the socket buffer, 1 MiB) and a
// 64 KiB one. Each run warms both paths first (V8 compiles the stack's hot paths during the
// first thousands of packets), then alternates idle and flooded phases for ROUNDS rounds so
// that machine noise hits both sides of the ratio alike (PROBES per side: each p99 is the
// 60th-worst of 6000, steadier than the 20th-worst of 2000 this used to take). The bulk rate is what is left once the probes (a closed loop: faster when
// isolated) have had their share of the CPU.
// Target: the latency QP's p99 under the flood <= 2x its idle p99.
import { randomBytes } from 'node:crypto'
import { createContext } from '@rdma-session/core'
import { softroce } from '@rdma-session/provider-softroce'
import { fmt, report } from '../measure.mjs'
import { PeerProcess, percentile } from './peer-process.mjs'

/** Probes per phase kind (idle, flooded), spread over ROUNDS alternating rounds. */
const PROBES = Number(process.env.BENCH_PROBES ?? 6000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 12)
const WARMUP_PROBES = Number(process.env.BENCH_WARMUP ?? 3000)
/** Probes on the bulk QP itself (each waits behind the whole bulk queue: tens of ms). */
const CONTRAST_PROBES = 100
const MiB = 1 << 20

async function run(windowBytes) {
  const options = windowBytes === undefined ? {} : { windowBytes }
  const peer = new PeerProcess()
  const psk = randomBytes(32)
  const { url } = await peer.call('listen', { psk: psk.toString('hex'), options, regionBytes: 16 * MiB })
  const ctx = await createContext({ provider: softroce({ port: 0, ...options }) })
  // Plaintext, asked for (sessions are encrypted by default): the figures published for this benchmark are plaintext.
  const session = await ctx.connect(url, { auth: { psk }, params: { encryption: 'none' }, qps: [{ qos: { class: 'latency', serviceLevel: 3 } }] })
  const [bulk] = await ctx.sessions.addQps(session.id, [{ qos: { class: 'bulk', weight: 4 } }], { remote: session.remote })
  const [latency] = session.qpsOfClass('latency')
  const remote = session.remoteRegions.get('data')
  const local = ctx.registerMemory(Buffer.alloc(8 * MiB, 5))
  const probeTarget = { addr: remote.addr + 16 * MiB - 64, rkey: remote.rkey, length: 64 }
  const probeSrc = local.slice(8 * MiB - 64, 64)

  const probe = async (qp, n) => {
    const us = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      await qp.write(probeSrc, probeTarget)
      us.push((performance.now() - t0) * 1000)
    }
    return us.sort((a, b) => a - b)
  }
  const flood = () => {
    let running = true
    let bytes = 0
    const t0 = performance.now()
    const lane = async (k) => {
      while (running) {
        await bulk.write(local.slice(k * MiB, MiB), { addr: remote.addr + k * MiB, rkey: remote.rkey, length: MiB })
        bytes += MiB
      }
    }
    const lanes = Promise.all([0, 1, 2, 3].map(lane))
    return async () => {
      running = false
      await lanes
      return (bytes / ((performance.now() - t0) / 1000))
    }
  }
  const under = async (qp, n) => {
    const stop = flood()
    await new Promise((r) => setTimeout(r, 100)) // the bulk queues fill
    const us = await probe(qp, n)
    return { us, rate: await stop() }
  }

  await probe(latency, WARMUP_PROBES)
  await under(latency, WARMUP_PROBES / 10)
  const idle = []
  const flooded = { us: [], rate: 0 }
  const perRound = Math.ceil(PROBES / ROUNDS)
  for (let r = 0; r < ROUNDS; r++) {
    idle.push(...(await probe(latency, perRound)))
    const f = await under(latency, perRound)
    flooded.us.push(...f.us)
    flooded.rate += f.rate / ROUNDS
  }
  idle.sort((a, b) => a - b)
  flooded.us.sort((a, b) => a - b)
  const cc = bulk.provider.congestion
  const window = cc == null ? 'off' : `${cc.packets} packets after the last flooded phase (floor ${fmt(cc.floorMs * 1000, 0)} µs, target ${fmt(cc.targetMs * 1000, 0)} µs${cc.contended ? ', contended' : ''}, ${cc.decreases} decreases)`
  const shared = await under(bulk, CONTRAST_PROBES)
  const windowKiB = ctx.device.windowBytes / 1024
  await ctx.close()
  await peer.close()
  return { windowKiB, idle, flooded, shared, window }
}

const p = (us, q) => percentile(us, q)
const us = (x) => (x >= 1000 ? `${fmt(x / 1000)} ms` : `${fmt(x, 0)} µs`)
const describe = (xs) => `p50 ${us(p(xs, 0.5))}, p99 ${us(p(xs, 0.99))}`
for (const windowBytes of [undefined, 64 * 1024]) {
  const r = await run(windowBytes)
  const ratio = p(r.flooded.us, 0.99) / p(r.idle, 0.99)
  report(`softroce QoS isolation: latency QP vs a flooding bulk QP in the same session (window ${r.windowKiB} KiB${windowBytes === undefined ? ', the default' : ''})`, [
    `latency QP, link idle:                ${describe(r.idle)}`,
    `latency QP, bulk QP flooding:         ${describe(r.flooded.us)}  (bulk at ${fmt(r.flooded.rate / 1e6, 0)} MB/s)`,
    `same probes on the bulk QP, flooding: ${describe(r.shared.us)}  (no isolation, for contrast)`,
    `${PROBES} probes per phase kind in ${ROUNDS} alternating rounds after ${WARMUP_PROBES} to warm up (${CONTRAST_PROBES} on the bulk QP), 64-byte RDMA WRITEs one at a time; bulk: 1 MiB WRITEs, 4 in flight`,
    `bulk QP's delay window: ${r.window}`,
  ], { ok: ratio <= 2, text: `latency QP p99 under the flood is ${fmt(ratio)}x its idle p99 (target <= 2x)` })
}
