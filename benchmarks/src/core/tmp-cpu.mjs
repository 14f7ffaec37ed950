import { Session } from 'node:inspector/promises'
import { writeFileSync } from 'node:fs'
import { setupPaths } from './dispatch-paths.mjs'
const path = process.argv[2]
const paths = await setupPaths()
for (let i = 0; i < 10; i++) await paths[path](10000)
const s = new Session(); s.connect()
await s.post('Profiler.enable')
await s.post('Profiler.setSamplingInterval', { interval: 50 })
await s.post('Profiler.start')
const c0 = process.cpuUsage()
for (let i = 0; i < Number(process.argv[3] ?? 60); i++) await paths[path](10000)
const c = process.cpuUsage(c0)
const { profile } = await s.post('Profiler.stop')
console.log(path, 'cpu ns/WR', ((c.user + c.system) * 1000 / (Number(process.argv[3] ?? 60) * 10000)).toFixed(0))
writeFileSync(`/tmp/i14-${path}.cpuprofile`, JSON.stringify(profile))
await paths.close()
