// Core dispatch overhead: 8-byte RDMA WRITEs on the mock provider through core against the same
// WRs straight on the provider SPI, in the same run (see dispatch-paths.mjs for what each path
// does; both sides post, poll and wait the same way). Rounds interleave the two sides and the
// figure is the median of the per-round ratios (CPU time; wall time beside it), with their
// spread and the load average, since other processes on a small machine move single
// measurements by tens of percent. A second measure needs no transport at all: the same loop over
// a provider that moves nothing (null-provider.mjs), through core and on its SPI; the difference
// per WR is core's own cost, shown against the mock's CPU time per WR.
// `--rounds N --ops N` change the run's size.
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { compareRounds, fmt, report } from '../measure.mjs'
import { DEPTH, setupNullPaths, setupPaths } from './dispatch-paths.mjs'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '61' }, ops: { type: 'string', default: '10000' } } })
const ROUNDS = Number(values.rounds)
const OPS = Number(values.ops)
const NULL_OPS = 100_000

const paths = await setupPaths()
const nulls = await setupNullPaths()
const load0 = loadavg()[0]
const raw = await compareRounds({ rounds: ROUNDS, baseline: () => paths.spi(OPS), subject: () => paths.coreRaw(OPS) })
const promised = await compareRounds({ rounds: ROUNDS, baseline: () => paths.spiPromise(OPS), subject: () => paths.corePromise(OPS) })
const own = await compareRounds({ rounds: ROUNDS, baseline: () => nulls.spi(NULL_OPS), subject: () => nulls.core(NULL_OPS) })
const load1 = loadavg()[0]
await paths.close()
await nulls.close()

const perOp = (ms) => `${fmt(OPS / ms, 1)} k ops/s (${fmt((ms * 1000) / OPS, 2)} µs/op)`
const spread = (r) => `median ${fmt(r.ratio, 3)}×  [min ${fmt(r.min, 3)}, p25 ${fmt(r.p25, 3)}, p75 ${fmt(r.p75, 3)}, max ${fmt(r.max, 3)}]`
const nsPerWr = (ms, ops) => (ms * 1e6) / ops
// Core's own work per WR: the fastest round of each side (a synchronous loop: the least disturbed one).
const ownNs = nsPerWr(own.subjectCpuMs.min, NULL_OPS) - nsPerWr(own.baselineCpuMs.min, NULL_OPS)
const mockNs = nsPerWr(raw.baselineCpuMs.median, OPS)
const overhead = (raw.cpu.ratio - 1) * 100
report(`core dispatch overhead, 8-byte RDMA WRITE on the mock, ${DEPTH} in flight, ${ROUNDS} interleaved rounds of ${OPS} WRs, load average ${fmt(load0, 2)} → ${fmt(load1, 2)}`, [
  `SPI postSend + cq.poll (baseline):   ${perOp(raw.baselineMs)} (wall, median round)`,
  `core qp.postSend + cq.poll:          ${perOp(raw.subjectMs)}`,
  `  per-round ratio core/SPI, CPU:     ${spread(raw.cpu)}`,
  `  per-round ratio core/SPI, wall:    ${spread(raw.wall)}`,
  `SPI + a promise per WR (baseline):   ${perOp(promised.baselineMs)}`,
  `core qp.write (a promise per WR):    ${perOp(promised.subjectMs)}`,
  `  per-round ratio core/SPI, CPU:     ${spread(promised.cpu)}`,
  `  per-round ratio core/SPI, wall:    ${spread(promised.wall)}`,
  `core's own work per WR (null provider, fastest rounds): ${fmt(ownNs, 1)} ns (SPI loop ${fmt(nsPerWr(own.baselineCpuMs.min, NULL_OPS), 1)} ns, through core ${fmt(nsPerWr(own.subjectCpuMs.min, NULL_OPS), 1)} ns)`,
  `  = ${fmt((100 * ownNs) / mockNs, 1)}% of the mock SPI's CPU time per WR (${fmt(mockNs, 0)} ns, median round)`,
], { ok: overhead <= 10, text: `dispatch overhead ${fmt(overhead, 1)}% (median per-round CPU-time ratio; target ≤ 10%); the promise API: ${fmt((promised.cpu.ratio - 1) * 100, 1)}% over a promise per WR on the SPI` })
