// Heap per QP on softroce's RC engine against the mock's (baseline), both through core, in the
// same run: idle connected QPs, then after one 8-byte WRITE on each (lazily allocated state).
// This is the measurement behind keeping two requester/responder state machines: the mock's
// 10,000-QP target is 4 KiB per QP, and softroce's engine does not fit it (see packages/rc-engine).
import { createContext } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { softroce } from '@rdma-session/provider-softroce'
import { fmt, report } from '../measure.mjs'

const QPS = 2000
const gc = globalThis.gc ?? (() => {})
const spec = [{ qos: { class: 'bulk' }, caps: { maxSendWr: 16, maxRecvWr: 16 } }]
const PLAINTEXT = { encryption: 'none' }

/** KiB per QP (one side; this process runs both), idle and after one WRITE each. */
async function heapPerQp(makeProvider) {
  const a = await createContext({ provider: makeProvider() })
  const b = await createContext({ provider: makeProvider() })
  const warm = await a.sessions.create({ peer: b, params: PLAINTEXT })
  for (let i = 0; i < 200; i++) await warm.addQps(spec)
  await warm.close()
  const session = await a.sessions.create({ peer: b, params: PLAINTEXT })
  gc(); gc()
  const h0 = process.memoryUsage().heapUsed
  for (let i = session.size; i < QPS; i++) await session.addQps(spec)
  gc(); gc()
  const idle = (process.memoryUsage().heapUsed - h0) / (QPS - 1) / 2 / 1024
  const target = b.registerMemory(Buffer.alloc(4096), { access: ['local-write', 'remote-write'] })
  const src = a.registerMemory(Buffer.alloc(4096))
  for (const qp of session.qps) await qp.write(src.slice(0, 8), target.region(0, 8))
  gc(); gc()
  const used = (process.memoryUsage().heapUsed - h0) / (QPS - 1) / 2 / 1024
  await a.close()
  await b.close()
  return { idle, used }
}

const fabric = new MockFabric()
const base = await heapPerQp(() => mock({ fabric }))
const subject = await heapPerQp(() => softroce({ address: '127.0.0.1', port: 0 }))
report(`heap per QP: softroce's RC engine vs the mock's (${QPS} QPs, core included, both sides)`, [
  `mock (baseline): ${fmt(base.idle)} KiB idle, ${fmt(base.used)} KiB after one WRITE`,
  `softroce:        ${fmt(subject.idle)} KiB idle, ${fmt(subject.used)} KiB after one WRITE  ratio ${fmt(subject.idle / base.idle)}× / ${fmt(subject.used / base.used)}×`,
], { ok: true, text: `softroce's engine needs ${fmt(subject.idle / base.idle)}× the mock's heap per idle QP (the mock's target is ≤ 4 KiB)` })
process.exit(0)
