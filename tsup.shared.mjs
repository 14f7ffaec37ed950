// The tsup settings every package builds with: ESM + CJS + d.ts for Node 20.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Build-time constants from the package's manifest (tsup runs in the package's folder):
 * __PACKAGE_NAME__, __PACKAGE_VERSION__ and __CORE_RANGE__, the @rdma-session/core versions a
 * provider takes as its peer (`workspace:^` written as the range pnpm publishes: ^<core version>).
 */
export function packageDefines(dir = process.cwd()) {
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  let range = manifest.peerDependencies?.['@rdma-session/core'] ?? null
  if (typeof range === 'string' && range.startsWith('workspace:')) {
    const core = JSON.parse(readFileSync(join(dir, '..', 'core', 'package.json'), 'utf8')).version
    const spec = range.slice('workspace:'.length)
    range = spec === '*' ? core : spec === '^' || spec === '~' ? `${spec}${core}` : spec
  }
  return { __PACKAGE_NAME__: JSON.stringify(manifest.name), __PACKAGE_VERSION__: JSON.stringify(manifest.version), __CORE_RANGE__: JSON.stringify(range) }
}

export function tsupConfig(overrides = {}) {
  return {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    define: packageDefines(),
    ...overrides,
  }
}
