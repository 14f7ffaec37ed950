import { defineConfig } from 'tsup'
import { tsupConfig } from '../../tsup.shared.mjs'

// Two entry points: the API, and ./prometheus (the only one that imports prom-client, an optional peer).
// paseto-ts (join tokens) and its @stablelib primitives ship as ES modules only: they are bundled,
// so the CommonJS build loads on every Node 20 (require() of an ES module needs 20.19).
export default defineConfig(tsupConfig({ entry: ['src/index.ts', 'src/prometheus.ts'], noExternal: ['paseto-ts', /^@stablelib\//] }))
