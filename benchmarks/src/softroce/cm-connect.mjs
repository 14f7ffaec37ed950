// Connection setup on loopback: one RC QP pair connected through rdma_cm (softroce's CM over
// QP1: REQ, REP, RTU as UD MADs) vs through the ws control plane (`ctx.connect()`: TCP + ws,
// Noise handshake with a PSK, then the negotiation of a session and its first QP). Both ends run
// in this process on two softroce devices (127.0.0.1, ephemeral ports); both connect one QP in
// RTS on each side and ask for no encryption. Only the setup is timed (connect() until both sides
// hold their established QP); the teardown runs outside the timed sections.
// Then the same through core on a second pair of devices: `ctx.connect('rdma-cm://…')` against
// `ctx.listen({ cm })` (an rdma-session session of one QP over rdma_cm, private data and session
// registration included) against the same ws baseline.
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { createContext } from '@rdma-session/core'
import { createCm, softroce } from '@rdma-session/provider-softroce'
import { compare, fmt, report } from '../measure.mjs'

const N = Number(process.env.BENCH_CM_N ?? 50)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const psk = Buffer.alloc(32, 9)

const a = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0 }) })
const b = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0 }) })
const cmA = createCm(a, { peerRocePort: b.info.port })
const cmB = createCm(b, { peerRocePort: a.info.port })
const listener = cmB.listen({ port: 7600 })
const server = await b.listen({ port: 0, auth: { psk }, rateLimit: { qpsPerSecond: 1e9, burst: 1e9 } })

const cmConns = []
const sessions = []
async function viaCm() {
  for (let i = 0; i < N; i++) {
    const [client, peer] = await Promise.all([cmA.connect({ host: '127.0.0.1', port: 7600 }), listener.accept()])
    cmConns.push(client, peer)
  }
}
async function viaWs() {
  for (let i = 0; i < N; i++) sessions.push(await a.connect(server.url, { auth: { psk }, params: { encryption: 'none' }, qps: [{}] }))
}
async function cleanup() {
  const conns = cmConns.splice(0)
  await Promise.all(conns.filter((c) => c.role === 'active').map((c) => c.disconnect()))
  await Promise.all(conns.map((c) => c.qp.close()))
  await Promise.all(sessions.splice(0).map((s) => s.close()))
}
const wsTimes = []
const cmTimes = []
const r = await compare({
  rounds: ROUNDS,
  baseline: async () => {
    const t0 = performance.now()
    await viaWs()
    wsTimes.push(performance.now() - t0)
    await cleanup()
  },
  subject: async () => {
    const t0 = performance.now()
    await viaCm()
    cmTimes.push(performance.now() - t0)
    await cleanup()
  },
})
const med = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
const wsUs = (med(wsTimes) * 1000) / N
const cmUs = (med(cmTimes) * 1000) / N
report('connection setup on loopback: rdma_cm (softroce CM over QP1) vs the ws control plane (softroce both ends)', [
  `ws control plane, ctx.connect() (TCP + ws + Noise PSK handshake + session with 1 QP): ${fmt(wsUs, 1)} µs per connection`,
  `rdma_cm, cm.connect() + listener.accept() (REQ, REP, RTU; 1 QP):                      ${fmt(cmUs, 1)} µs per connection`,
  `rdma_cm takes ${fmt(cmUs / wsUs)}x the time of the ws control plane (median of ${ROUNDS} rounds of ${N}; run ratio incl. teardown ${fmt(r.ratio)})`,
])

// ---- core: sessions over rdma_cm vs over ws
const c = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0 }) })
const d = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0 }) })
c.connectionManager({ peerRocePort: d.info.port })
d.connectionManager({ peerRocePort: c.info.port })
const coreServer = await d.listen({ cm: { port: 7601 } })
const coreSessions = []
async function viaCore() {
  for (let i = 0; i < N; i++) {
    const [session] = await Promise.all([c.connect('rdma-cm://127.0.0.1:7601', { params: { encryption: 'none' } }), once(coreServer, 'session')])
    coreSessions.push(session)
  }
}
async function cleanupCore() {
  await Promise.all(coreSessions.splice(0).map((s) => s.close()))
  // the listening side ends its sessions on the DREQs; wait for that before the next timed section
  while (d.sessions.list().length > 0) await sleep(5)
}
const coreTimes = []
const wsTimes2 = []
const r2 = await compare({
  rounds: ROUNDS,
  baseline: async () => {
    const t0 = performance.now()
    await viaWs()
    wsTimes2.push(performance.now() - t0)
    await cleanup()
  },
  subject: async () => {
    const t0 = performance.now()
    await viaCore()
    coreTimes.push(performance.now() - t0)
    await cleanupCore()
  },
})
const ws2Us = (med(wsTimes2) * 1000) / N
const coreUs = (med(coreTimes) * 1000) / N
report('session setup through core on loopback: ctx.connect(\'rdma-cm://…\') vs ctx.connect(\'ws://…\') (softroce both ends)', [
  `ws control plane, ctx.connect('ws://…') (session with 1 QP):                     ${fmt(ws2Us, 1)} µs per session`,
  `rdma_cm, ctx.connect('rdma-cm://…') to ctx.listen({ cm }) (session with 1 QP):    ${fmt(coreUs, 1)} µs per session`,
  `a session over rdma_cm takes ${fmt(coreUs / ws2Us)}x the time of one over ws (median of ${ROUNDS} rounds of ${N}; run ratio incl. teardown ${fmt(r2.ratio)})`,
])

cmA.close()
cmB.close()
coreServer.close()
await server.close()
await Promise.all([a.close(), b.close(), c.close(), d.close()])
