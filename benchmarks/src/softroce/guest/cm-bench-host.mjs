// The host's side of ../cm-connect-guest.mjs, in the rxe-vm guest's netns under the RoCE socket
// launcher (tools/rxe-vm/roce-socket.mjs; fd in SOFTROCE_FD): provider-softroce on 10.77.0.1 sets
// up connections to the provider-verbs listener in the guest (guest/cm-bench-listener.mjs), timed
// until each connect() resolves (the QP in RTS here): a session of one QP over rdma_cm
// (`ctx.connect('rdma-cm://…')`) and one plain rdma_cm QP (`ctx.connectQp`), each against a
// session of one QP over the ws control plane, interleaved (compare()). Prints one JSON line.
import { createContext } from '@rdma-session/core'
import { softroce } from '@rdma-session/provider-softroce'
import { compare, median } from '../../measure.mjs'

const N = Number(process.env.BENCH_CM_GUEST_N ?? 10)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const psk = Buffer.alloc(32, 9)
const fd = Number(process.env.SOFTROCE_FD)
const ctx = await createContext({ provider: softroce({ address: '10.77.0.1', socket: { fd, pmtudiscDo: true } }) })

const opened = []
const times = { ws: [], cmSession: [], cmQp: [] }
/** N setups one after the other; each one's time (ms) into `into`. */
async function timed(into, connect) {
  for (let i = 0; i < N; i++) {
    const t0 = performance.now()
    opened.push(await connect())
    into.push(performance.now() - t0)
  }
}
async function cleanup() {
  const all = opened.splice(0)
  await Promise.all(all.map(async (x) => {
    if ('disconnect' in x) {
      await x.disconnect()
      await x.qp.close()
    } else {
      await x.close()
    }
  }))
}
const viaWs = () => timed(times.ws, () => ctx.connect('ws://10.77.0.2:7701', { auth: { psk }, params: { encryption: 'none' }, qps: [{}] }))
const viaCmSession = () => timed(times.cmSession, () => ctx.connect('rdma-cm://10.77.0.2:7700', { params: { encryption: 'none' } }))
const viaCmQp = () => timed(times.cmQp, () => ctx.connectQp('rdma-cm://10.77.0.2:7700'))
const run = (f) => async () => {
  await f()
  await cleanup()
}
const sessions = await compare({ rounds: ROUNDS, baseline: run(viaWs), subject: run(viaCmSession) })
const wsFirst = times.ws.splice(0)
const plain = await compare({ rounds: ROUNDS, baseline: run(viaWs), subject: run(viaCmQp) })
await ctx.close()
console.log(JSON.stringify({
  n: N, rounds: ROUNDS,
  wsMs: median(wsFirst), cmSessionMs: median(times.cmSession), sessionRatio: sessions.ratio,
  ws2Ms: median(times.ws), cmQpMs: median(times.cmQp), plainRatio: plain.ratio,
}))
