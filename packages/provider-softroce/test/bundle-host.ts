/**
 * Bundles a test host (a TypeScript entry run in its own process) with tsup into
 * node_modules/.softroce-<name>/<name>.mjs and returns its path. @rdma-session/core stays
 * external; the bundle finds the native helper by walking up to this package, as the package does.
 */
import { mkdirSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..')

export async function bundleHost(entry: string): Promise<string> {
  const { build } = await import('tsup')
  const name = basename(entry).replace(/\.ts$/, '')
  const outDir = join(packageRoot, 'node_modules', `.softroce-${name}`)
  mkdirSync(outDir, { recursive: true })
  await build({
    entry: { [name]: entry }, outDir, format: ['esm'], platform: 'node', target: 'node20',
    dts: false, sourcemap: false, silent: true, config: false, splitting: false, clean: false, external: ['@rdma-session/core'],
    outExtension: () => ({ js: '.mjs' }),
  })
  return join(outDir, `${name}.mjs`)
}
