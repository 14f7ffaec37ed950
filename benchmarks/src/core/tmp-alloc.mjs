import { Session } from 'node:inspector/promises'
import { writeFileSync } from 'node:fs'
import { setupPaths } from './dispatch-paths.mjs'
const path = process.argv[2]
const paths = await setupPaths()
for (let i = 0; i < 5; i++) await paths[path](10000)
const s = new Session(); s.connect()
await s.post('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true })
for (let i = 0; i < 10; i++) await paths[path](10000)
const { profile } = await s.post('HeapProfiler.stopSampling')
writeFileSync(`/tmp/i14-${path}.heapprofile`, JSON.stringify(profile))
await paths.close()
