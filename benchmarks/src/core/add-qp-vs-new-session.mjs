// Adding a QP to an existing session by its ID vs creating a new session (with one QP):
// both on the mock, both with the same peer, so the difference is the session setup.
import { createContext } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { compare, fmt, report } from '../measure.mjs'

const N = 200
const fabric = new MockFabric()
const a = await createContext({ provider: mock({ fabric }) })
const b = await createContext({ provider: mock({ fabric }) })
const session = await a.sessions.create({ peer: b, params: { encryption: 'aes-256-gcm' } })
const id = session.id

const { baselineMs, subjectMs, ratio } = await compare({
  rounds: 6,
  // baseline: N new encrypted sessions, each with one QP, closed afterwards
  baseline: async () => {
    const made = []
    for (let i = 0; i < N; i++) made.push(await a.sessions.create({ peer: b, params: { encryption: 'aes-256-gcm' } }))
    await Promise.all(made.map((s) => s.close()))
  },
  // subject: N QPs added to the existing session by its ID, removed afterwards
  subject: async () => {
    const added = []
    for (let i = 0; i < N; i++) added.push(...(await a.sessions.addQps(id, [{ qos: { class: 'bulk' } }], { remote: session.remote })))
    await Promise.all(added.map((qp) => session.removeQp(qp)))
  },
})
report('add a QP by session ID vs create a new session (mock, aes-256-gcm)', [
  `new session + 1 QP: ${fmt((baselineMs * 1000) / N, 1)} µs each (incl. close)`,
  `addQps(id) 1 QP:    ${fmt((subjectMs * 1000) / N, 1)} µs each (incl. remove)`,
  `ratio add/create: ${fmt(ratio)}×`,
], { ok: ratio < 1, text: `adding by ID costs ${fmt(ratio)}× a new session (reported; expected < 1)` })
await a.close()
await b.close()
