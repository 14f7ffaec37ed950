// Runs one path of the dispatch-overhead benchmark alone, for a profiler:
//   node --cpu-prof --cpu-prof-dir=/tmp/prof benchmarks/src/core/dispatch-profile.mjs coreRaw
// Paths: spi, coreRaw, corePromise, spiPromise (see dispatch-paths.mjs).
import { setupPaths } from './dispatch-paths.mjs'

const path = process.argv[2] ?? 'coreRaw'
const rounds = Number(process.argv[3] ?? 100)
const paths = await setupPaths()
if (typeof paths[path] !== 'function' || path === 'close') throw new Error(`unknown path ${path}; one of spi, coreRaw, corePromise, spiPromise`)
const t0 = performance.now()
for (let i = 0; i < rounds; i++) await paths[path](10000)
const ms = performance.now() - t0
console.log(`${path}: ${rounds} × 10000 WRs in ${ms.toFixed(0)} ms (${((ms * 1000) / (rounds * 10000)).toFixed(3)} µs/WR)`)
await paths.close()
