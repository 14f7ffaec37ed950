import { defineConfig } from 'tsup'
import { tsupConfig } from '../../tsup.shared.mjs'

// paseto-ts (join tokens) and its @stablelib primitives ship as ES modules only: they are bundled,
// so the CommonJS build loads on every Node 20 (require() of an ES module needs 20.19).
export default defineConfig(tsupConfig({ noExternal: ['paseto-ts', /^@stablelib\//] }))
