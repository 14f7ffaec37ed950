/** Finds a provider by name (RDMA_SESSION_PROVIDER) with a dynamic import, and checks it looks like one. */
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ProviderInvalidError, ProviderMissingError, ProviderUnknownError } from './errors.js'
import type { Provider } from './spi.js'

/** Known provider names and the packages that implement them. */
export const PROVIDER_PACKAGES: Readonly<Record<string, string>> = {
  mock: '@rdma-session/provider-mock',
  softroce: '@rdma-session/provider-softroce',
  verbs: '@rdma-session/provider-verbs',
}

/** Edit distance (insertions, deletions, substitutions) between two short strings. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)))
    prev = row
  }
  return prev[b.length]!
}

/** The known provider `name` most likely stands for (case, a typo, the package name or its tail), or null. */
export function suggestProvider(name: string): string | null {
  const plain = name.toLowerCase().replace(/^@rdma-session\//, '').replace(/^provider-/, '')
  let best: string | null = null
  let bestDistance = Infinity
  for (const known of Object.keys(PROVIDER_PACKAGES)) {
    const d = editDistance(plain, known)
    if (d < bestDistance) [best, bestDistance] = [known, d]
  }
  return bestDistance <= Math.max(1, Math.floor((best?.length ?? 0) / 3)) ? best : null
}

/**
 * The package to import for a provider name: a known name (mock, softroce, verbs), a scoped
 * package name (@scope/name) or a path. Anything else (a typo, another case, an unscoped name
 * that anyone could publish) is refused with ProviderUnknownError and a "did you mean".
 */
export function resolveProviderName(name: string): string {
  const known = PROVIDER_PACKAGES[name]
  if (known !== undefined) return known
  const scoped = /^@[a-z0-9][a-z0-9._~-]*\/[a-z0-9][a-z0-9._~-]*$/.test(name)
  const path = /^(\.{1,2}\/|\/|file:)/.test(name)
  if (scoped || path) return name
  throw new ProviderUnknownError(name, Object.keys(PROVIDER_PACKAGES), suggestProvider(name))
}

/** What a provider package exports so it can be loaded by name. */
export interface ProviderModule {
  createProvider(options?: Record<string, unknown>): Provider | Promise<Provider>
}

export function assertProvider(value: unknown): asserts value is Provider {
  const p = value as Partial<Provider> | null
  if (p === null || typeof p !== 'object' || typeof p.name !== 'string' || typeof p.openDevice !== 'function' || typeof p.capabilities !== 'object') {
    throw new ProviderInvalidError('not a provider: expected { name, capabilities, openDevice() }, e.g. mock() from @rdma-session/provider-mock')
  }
}

function isModuleNotFound(err: unknown, packageName: string): boolean {
  const e = err as { code?: string; message?: string } | null
  if (e === null || typeof e !== 'object') return false
  const code = e.code ?? ''
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && (e.message ?? '').includes(packageName)
}

/**
 * Imports a package as the application sees it: first from core's own location,
 * then from the working directory (where the app's node_modules are; with pnpm's
 * strict layout core cannot see packages it does not depend on).
 */
async function importFromApp(specifier: string): Promise<unknown> {
  try {
    return await import(specifier)
  } catch (err) {
    let resolved: string
    try {
      resolved = resolveAsImport(specifier, join(process.cwd(), 'package.json'))
    } catch {
      throw err
    }
    return await import(pathToFileURL(resolved).href)
  }
}

/**
 * Resolves a bare package name from `parent` the way `import` would: through the
 * package's "import" export condition, not "require" (createRequire alone would pick
 * the CJS build, and the app, which imported the ESM build, would then meet a second
 * copy of the provider's classes: `instanceof MockFabric` fails, for one).
 */
function resolveAsImport(specifier: string, parent: string): string {
  const require = createRequire(parent)
  let manifestPath: string
  try {
    manifestPath = require.resolve(`${specifier}/package.json`)
  } catch {
    return require.resolve(specifier)
  }
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { exports?: unknown; module?: string; main?: string }
  const root = (manifest.exports !== null && typeof manifest.exports === 'object' && '.' in manifest.exports ? (manifest.exports as Record<string, unknown>)['.'] : manifest.exports) as unknown
  const pick = (entry: unknown): string | undefined => {
    if (typeof entry === 'string') return entry
    if (entry === null || typeof entry !== 'object') return undefined
    const e = entry as Record<string, unknown>
    return pick(e.import) ?? pick(e.node) ?? pick(e.default)
  }
  const target = pick(root) ?? manifest.module
  return target === undefined ? require.resolve(specifier) : join(dirname(manifestPath), target)
}

function exportsOf(mod: unknown): Partial<ProviderModule> {
  const m = mod as Partial<ProviderModule> & { default?: Partial<ProviderModule> }
  return typeof m.createProvider === 'function' ? m : (m.default ?? m)
}

/**
 * Imports the package for `name` (a known name such as `mock`, a scoped package name or a path;
 * see resolveProviderName) and creates its provider. A missing package gives ProviderMissingError naming it.
 */
export async function loadProvider(name: string, options?: Record<string, unknown>, importer: (specifier: string) => Promise<unknown> = importFromApp): Promise<Provider> {
  const packageName = resolveProviderName(name)
  let mod: Partial<ProviderModule>
  try {
    mod = exportsOf(await importer(packageName))
  } catch (err) {
    if (isModuleNotFound(err, packageName)) throw new ProviderMissingError(name, packageName, err)
    throw err
  }
  if (typeof mod.createProvider !== 'function') {
    throw new ProviderInvalidError(`package ${packageName} does not export createProvider(); is it an @rdma-session provider?`, { packageName })
  }
  const provider = await mod.createProvider(options)
  assertProvider(provider)
  return provider
}
