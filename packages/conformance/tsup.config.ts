import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // vitest is a peer dependency: the provider's own copy runs the suite.
  external: ['vitest', '@rdma-session/core'],
})
