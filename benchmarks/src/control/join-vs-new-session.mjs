// The control plane over ws (a real ws server on 127.0.0.1, PSK auth, every frame sealed):
// 1. adding one QP to an established session by its ID, through the session's authenticated
//    channel, vs creating a new session over the control plane — `ctx.connect()`: connection,
//    X25519 handshake, then the combined negotiation of the session and its first QP. Target: the
//    join is >= 5x cheaper. Also reported: a new session over an already-open channel (no
//    handshake), to show where the difference comes from.
// 2. 1,000 QPs added in one batched request vs 1,000 single-QP requests.
// Both ends run in this process on provider-mock (one fabric), so the figures are the control
// plane's own cost (CPU of both ends, serialization, sealing, one loopback round trip each), not
// a provider's. Only the creation is timed; cleanup runs outside the timed sections.
import { createContext } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { setTimeout as sleep } from 'node:timers/promises'
import { fmt, median, report } from '../measure.mjs'

const N = Number(process.env.BENCH_CONTROL_N ?? 100)
const BATCH = Number(process.env.BENCH_CONTROL_BATCH ?? 1000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const psk = Buffer.alloc(32, 7)

const fabric = new MockFabric()
// Both on 127.0.0.1, where their control connections come from (peers bind declared RoCE endpoints to it).
const server = await createContext({ provider: mock({ fabric, address: '127.0.0.1', port: 5000 }) })
const client = await createContext({ provider: mock({ fabric, address: '127.0.0.1', port: 5001 }) })
const listener = await server.listen({ port: 0, auth: { psk }, rateLimit: { qpsPerSecond: 1e9, burst: 1e9 } })
const url = listener.url
const params = { encryption: 'aes-256-gcm' }

/** Runs `make` n times, timing only the calls; returns µs per call and what they made. */
async function timed(n, make) {
  const made = []
  let ms = 0
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    made.push(await make(i))
    ms += performance.now() - t0
  }
  return { usEach: (ms * 1000) / n, made }
}

// ---- 1. join by ID vs new session
const held = await client.connect(url, { auth: { psk }, params, qps: [{}] })
const channel = await client.dial(url, { auth: { psk } })

const newSession = () => timed(N, () => client.connect(url, { auth: { psk }, params, qps: [{}] }))
const newOnChannel = () => timed(N, () => client.sessions.create({ peer: channel, params, qps: [{}] }))
const join = () => timed(N, () => client.sessions.addQps(held.id, [{}], { remote: held.remote }))

const runs = { connect: [], channel: [], join: [] }
for (let round = -1; round < ROUNDS; round++) {
  // Interleaved, one warm-up round (-1) not counted.
  const c = await newSession()
  await Promise.all(c.made.map((s) => s.close()))
  await sleep(50)
  const ch = await newOnChannel()
  await Promise.all(ch.made.map((s) => s.close()))
  await sleep(50)
  const j = await join()
  for (const qps of j.made) for (const qp of qps) await held.removeQp(qp)
  await sleep(50) // let the peer finish its side of the cleanup before the next timed section
  if (round < 0) continue
  runs.connect.push(c.usEach)
  runs.channel.push(ch.usEach)
  runs.join.push(j.usEach)
}
const connectUs = median(runs.connect)
const channelUs = median(runs.channel)
const joinUs = median(runs.join)
const cheaper = connectUs / joinUs
report('control plane: add one QP by session ID vs create a new session (ws, PSK, aes-256-gcm, mock both ends)', [
  `new session, ctx.connect() (dial + handshake + negotiation, 1 QP): ${fmt(connectUs, 1)} µs`,
  `new session over an open channel (negotiation only, 1 QP):        ${fmt(channelUs, 1)} µs`,
  `addQps(sessionId) 1 QP over the session's channel:                 ${fmt(joinUs, 1)} µs`,
  `join is ${fmt(cheaper)}x cheaper than ctx.connect(), ${fmt(channelUs / joinUs)}x cheaper than a session on an open channel (median of ${ROUNDS} rounds of ${N})`,
], { ok: cheaper >= 5, text: `adding a QP by ID is ${fmt(cheaper)}x cheaper than a new session (target >= 5x)` })

// ---- 2. 1,000 QPs: one batched request vs single requests
const batched = []
const single = []
for (let round = -1; round < ROUNDS; round++) {
  const s1 = await client.connect(url, { auth: { psk }, params, qps: [{}] })
  const t0 = performance.now()
  await s1.addQps(Array.from({ length: BATCH }, () => ({})))
  const tBatch = performance.now() - t0
  await s1.close()
  await sleep(50)
  const s2 = await client.connect(url, { auth: { psk }, params, qps: [{}] })
  const t1 = performance.now()
  for (let i = 0; i < BATCH; i++) await s2.addQps([{}])
  const tSingle = performance.now() - t1
  await s2.close()
  await sleep(50)
  if (round < 0) continue
  batched.push(tBatch)
  single.push(tSingle)
}
const batchMs = median(batched)
const singleMs = median(single)
report(`control plane: ${BATCH} QPs in one batched request vs ${BATCH} single requests (ws, mock both ends)`, [
  `one request of ${BATCH}: ${fmt(batchMs, 1)} ms (${fmt((batchMs * 1000) / BATCH, 1)} µs per QP)`,
  `${BATCH} requests of 1:  ${fmt(singleMs, 1)} ms (${fmt((singleMs * 1000) / BATCH, 1)} µs per QP)`,
  `batched is ${fmt(singleMs / batchMs)}x faster`,
], { ok: singleMs > batchMs, text: `batching ${BATCH} QPs is ${fmt(singleMs / batchMs)}x faster than single requests (reported)` })

await held.close()
channel.close('done')
await client.close()
await server.close()
