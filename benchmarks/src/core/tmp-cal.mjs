import { setupPaths } from './dispatch-paths.mjs'
import { compareRounds } from '../measure.mjs'
import { loadavg } from 'node:os'
const [A, B, rounds = '31'] = process.argv.slice(2)
const p1 = await setupPaths()
const p2 = await setupPaths()
const r = await compareRounds({ rounds: Number(rounds), baseline: () => p1[A](10000), subject: () => p2[B](10000) })
const f = (x) => `${x.ratio.toFixed(3)} [${x.p25.toFixed(3)}-${x.p75.toFixed(3)}]`
console.log(`2 setups ${B}/${A} cpu ${f(r.cpu)} wall ${f(r.wall)} load ${loadavg()[0].toFixed(1)}`)
