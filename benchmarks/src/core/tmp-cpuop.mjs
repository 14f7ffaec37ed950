import { setupPaths } from './dispatch-paths.mjs'
import { timeBoth } from '../measure.mjs'
const p = await setupPaths()
const names = process.argv.slice(2)
const best = Object.fromEntries(names.map((n) => [n, Infinity]))
for (let i = 0; i < 40; i++) for (const n of names) best[n] = Math.min(best[n], (await timeBoth(() => p[n](10000))).cpu * 100)
console.log(Object.entries(best).map(([n, v]) => `${n} min CPU ${v.toFixed(0)} ns/WR`).join('  '))
await p.close()
