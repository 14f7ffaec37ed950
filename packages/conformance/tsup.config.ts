import { defineConfig } from 'tsup'
import { tsupConfig } from '../../tsup.shared.mjs'

export default defineConfig(tsupConfig({
  // vitest is a peer dependency: the provider's own copy runs the suite.
  external: ['vitest', '@rdma-session/core'],
}))
