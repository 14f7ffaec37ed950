// The tsup settings every package builds with: ESM + CJS + d.ts for Node 20.
export function tsupConfig(overrides = {}) {
  return {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    ...overrides,
  }
}
