/**
 * The CLI bundled from its sources for a guest test (core and provider-softroce from their builds,
 * the native socket helper from provider-softroce), run by node inside the guest's netns.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

/** Builds `src/bin.ts` of the package at `pkg` into node_modules/.<name>/rdma-session.mjs and returns that path. */
export async function bundleCliForGuest(pkg: string, name: string): Promise<string> {
  const { build } = await import('tsup')
  const outDir = join(pkg, 'node_modules', `.${name}`)
  mkdirSync(outDir, { recursive: true })
  await build({
    entry: { 'rdma-session': join(pkg, 'src', 'bin.ts') }, outDir, format: ['esm'], platform: 'node', target: 'node20',
    dts: false, sourcemap: false, silent: true, config: false, splitting: false, clean: false,
    esbuildOptions: (o) => { o.packages = 'external' },
    outExtension: () => ({ js: '.mjs' }),
  })
  return join(outDir, 'rdma-session.mjs')
}
