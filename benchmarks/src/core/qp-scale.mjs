// 10,000 QPs in one session: the cost of adding QP #10 vs QP #10,000 (each timed over a
// window of adds around it), and the heap each QP costs (core + mock provider, both sides).
import { createContext } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { fmt, median, report } from '../measure.mjs'

const TOTAL = 10000
const WINDOW = 10 // adds timed around each point of interest
const gc = globalThis.gc ?? (() => {})

const fabric = new MockFabric()
const a = await createContext({ provider: mock({ fabric }) })
const b = await createContext({ provider: mock({ fabric }) })
const spec = [{ qos: { class: 'bulk' }, caps: { maxSendWr: 16, maxRecvWr: 16 } }]
// Warm up (JIT) on a throwaway session, so QP #10 is timed on hot code like QP #10,000.
const warm = await a.sessions.create({ peer: b })
for (let i = 0; i < 1000; i++) await warm.addQps(spec)
await warm.close()
const session = await a.sessions.create({ peer: b })

gc(); gc()
const heapBefore = process.memoryUsage().heapUsed
const addTimes = []
for (let i = session.size; i < TOTAL; i++) {
  const t0 = process.hrtime.bigint()
  await session.addQps(spec)
  addTimes[i + 1] = Number(process.hrtime.bigint() - t0) / 1000
}
gc(); gc()
const heapAfter = process.memoryUsage().heapUsed
const around = (n) => median(addTimes.slice(n - WINDOW / 2, n + WINDOW / 2).filter((x) => x !== undefined))
const early = around(10)
const late = around(TOTAL - WINDOW / 2)
const ratio = late / early
const perQp = (heapAfter - heapBefore) / (TOTAL - 1)
// The heap holds both ends of each QP (this process runs both sides): report per side too.
report(`${TOTAL} QPs in one session (mock)`, [
  `add QP #10: ${fmt(early, 1)} µs (median of ${WINDOW}), add QP #${TOTAL}: ${fmt(late, 1)} µs`,
  `ratio #${TOTAL}/#10: ${fmt(ratio)}× (target ≤ 1.5×)`,
  `heap: ${fmt((heapAfter - heapBefore) / 1048576, 1)} MiB for ${TOTAL - 1} QP pairs = ${fmt(perQp / 1024, 2)} KiB per QP pair, ${fmt(perQp / 2048, 2)} KiB per QP (target ≤ 4 KiB)`,
], { ok: ratio <= 1.5 && perQp / 2 <= 4096, text: `add-cost ratio ${fmt(ratio)}× (≤ 1.5), ${fmt(perQp / 2048, 2)} KiB/QP (≤ 4)` })
await a.close()
await b.close()
