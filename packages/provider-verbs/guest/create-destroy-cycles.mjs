#!/usr/bin/env node
// Runs inside the rxe guest: N cycles of PD + MR (4 KiB Buffer) + CQ + QP (taken to INIT) created
// and destroyed through provider-verbs, with RSS sampled along the way. Prints progress lines and
// one `GUEST-RESULT {...}` line; exits 1 if RSS grew more than the bound or a native object leaked.
//   node --expose-gc guest/create-destroy-cycles.mjs [N] [boundMiB]
import { verbs } from '../dist/index.js'

const N = Number(process.argv[2] ?? 10_000)
// The total bound catches gross growth; the leak test is the quarter climb below. The heap and
// malloc arenas settle in the first ~1,000 measured cycles (CI saw +6.3 MiB there, then +2.4 MiB
// over the other 9,000, flat in the second half): 16 MiB leaves room for that step.
const BOUND_MIB = Number(process.argv[3] ?? 16)
const WARMUP = Math.min(1000, Math.max(1, N >> 3))
const qos = { serviceLevel: 0, trafficClass: 0, className: 'default', weight: 1, rateLimitBps: 0 }
const mib = (b) => +(b / 2 ** 20).toFixed(2)
// Node runs the finalizers of collected native wrappers from the event loop, so the loop yields
// every YIELD_EVERY cycles (as any real program does) and twice around each forced GC.
const YIELD_EVERY = 50
const turn = () => new Promise((resolve) => setImmediate(resolve))
async function rss() {
  await turn()
  globalThis.gc?.()
  await turn()
  await turn()
  return process.memoryUsage().rss
}

const provider = verbs({ device: process.env.RXE_DEVICE ?? 'rxe0' })
const device = await provider.openDevice()

function cycle() {
  const pd = device.allocPd()
  const mr = pd.registerMemory(Buffer.alloc(4096), 0b1111)
  const cq = pd.createCq(64)
  const qp = pd.createQp({ sendCq: cq, recvCq: cq, maxSendWr: 16, maxRecvWr: 16, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0, qos })
  qp.modify({ state: 'INIT', accessFlags: 0b1111, portNum: 1, pkeyIndex: 0 })
  qp.destroy()
  cq.destroy()
  mr.deregister()
  pd.dealloc()
}

const t0 = performance.now()
for (let i = 0; i < WARMUP; i++) {
  cycle()
  if (i % YIELD_EVERY === 0) await turn()
}
const start = await rss()
const samples = [{ cycle: 0, rssMiB: mib(start) }]
console.log(`cycles: warm-up ${WARMUP} done, RSS ${mib(start)} MiB`)
const t1 = performance.now()
for (let i = 1; i <= N; i++) {
  cycle()
  if (i % YIELD_EVERY === 0) await turn()
  if (i % 1000 === 0 || i === N) {
    const r = await rss()
    samples.push({ cycle: i, rssMiB: mib(r) })
    console.log(`cycles: ${i}/${N} RSS ${mib(r)} MiB (+${mib(r - start)})`)
  }
}
const ms = performance.now() - t1
const end = await rss()
const left = device.stats()
await device.close()
const growth = mib(end - start)
// Flat means: bounded in all (BOUND_MIB), and no steady climb in the second half. A leak climbs in every
// stretch of cycles: one of even ~400 B per cycle adds 1 MiB in each quarter (2,500 cycles). The
// heap and the allocator grow in steps (a new V8 page, a new malloc arena) that land in one
// quarter only, so the climb is measured in both quarters of the second half and the smaller
// counts: a step passes, a leak fails both.
const near = (cycle) => samples.reduce((best, s) => (Math.abs(s.cycle - cycle) < Math.abs(best.cycle - cycle) ? s : best), samples[0])
const climb = (from, to) => +(near(to).rssMiB - near(from).rssMiB).toFixed(2)
const secondHalf = +(mib(end) - near(N / 2).rssMiB).toFixed(2)
const quarterClimb = Math.min(climb(N / 2, (3 * N) / 4), climb((3 * N) / 4, N))
const QUARTER_BOUND_MIB = 1
const ok = growth <= BOUND_MIB && quarterClimb <= QUARTER_BOUND_MIB && left.qps + left.cqs + left.mrs + left.pds + left.srqs === 0
const result = { part: 'cycles', cycles: N, warmup: WARMUP, rssStartMiB: mib(start), rssEndMiB: mib(end), growthMiB: growth, boundMiB: BOUND_MIB, secondHalfGrowthMiB: secondHalf, quarterClimbMiB: quarterClimb, quarterBoundMiB: QUARTER_BOUND_MIB, usPerCycle: +((ms * 1000) / N).toFixed(1), ms: Math.round(ms), totalMs: Math.round(performance.now() - t0), leftOver: left, samples, ok }
console.log(`GUEST-RESULT ${JSON.stringify(result)}`)
process.exit(ok ? 0 : 1)
