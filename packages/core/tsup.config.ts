import { defineConfig } from 'tsup'
import { tsupConfig } from '../../tsup.shared.mjs'

// Two entry points: the API, and ./prometheus (the only one that imports prom-client, an optional peer).
export default defineConfig(tsupConfig({ entry: ['src/index.ts', 'src/prometheus.ts'] }))
