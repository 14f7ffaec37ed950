import { setupPaths } from '/work/wt/i14disp/benchmarks/src/core/dispatch-paths.mjs'
import { compareRounds } from '/work/wt/i14disp/benchmarks/src/measure.mjs'
import { loadavg } from 'node:os'
const [A, B, rounds = '31'] = process.argv.slice(2)
const p = await setupPaths()
const r = await compareRounds({ rounds: Number(rounds), baseline: () => p[A](10000), subject: () => p[B](10000) })
const f = (x) => `${x.ratio.toFixed(3)} [${x.p25.toFixed(3)}-${x.p75.toFixed(3)}]`
console.log(`${B}/${A} cpu ${f(r.cpu)} wall ${f(r.wall)} base ${(r.baselineMs*100).toFixed(0)}ns/op load ${loadavg()[0].toFixed(1)}`)
await p.close()
