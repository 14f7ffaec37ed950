/**
 * Finds a provider by name (RDMA_SESSION_PROVIDER) with a dynamic import, as the application
 * would import it (see provider-resolution.ts), and checks it looks like one.
 */
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ProviderInvalidError, ProviderMissingError, ProviderUnknownError } from './errors.js'
import { assertProvider } from './provider-shape.js'
import { describeProviderSearch, providerSearchPlaces, resolvePackageFrom, type ProviderSearch } from './provider-resolution.js'
import type { Provider } from '@rdma-session/provider-interface'

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

/** True when `err` says `packageName` itself (not something it imports) could not be found. */
function isModuleNotFound(err: unknown, packageName: string): boolean {
  const e = err as { code?: string; message?: string } | null
  if (e === null || typeof e !== 'object') return false
  if (e.code !== 'ERR_MODULE_NOT_FOUND' && e.code !== 'MODULE_NOT_FOUND') return false
  // "Cannot find package 'X' imported from …" (ESM), "Cannot find module 'X'" (CJS): X is what is missing.
  const missing = /Cannot find (?:package|module) '([^']+)'/.exec(e.message ?? '')?.[1]
  return missing === packageName || (missing?.startsWith(`${packageName}/`) ?? false)
}

/** The import failure of a package found neither next to core nor from the application's folders. */
class PackageNotFound extends Error {
  readonly code = 'ERR_MODULE_NOT_FOUND'
  constructor(packageName: string, readonly search: ProviderSearch, cause: unknown) {
    super(`Cannot find package '${packageName}'`, { cause })
  }
}

/** An importer that resolves as the application would (see providerSearchPlaces); `entry` and `cwd` default to this process's. */
export function applicationImporter(entry?: string, cwd?: string): (specifier: string) => Promise<unknown> {
  return async (specifier) => {
    // A path names a file relative to the working directory, not to core's own folder.
    if (/^(\.{1,2}\/|\/)/.test(specifier)) return await import(pathToFileURL(resolve(cwd ?? process.cwd(), specifier)).href)
    if (specifier.startsWith('file:')) return await import(specifier)
    try {
      return await import(specifier) // next to core (its own dependencies, hoisted installs)
    } catch (err) {
      if (!isModuleNotFound(err, specifier)) throw err
      const places = providerSearchPlaces(entry, cwd)
      for (const place of places) {
        const file = resolvePackageFrom(specifier, place.dir)
        if (file !== null) return await import(pathToFileURL(file).href)
      }
      throw new PackageNotFound(specifier, describeProviderSearch(places), err)
    }
  }
}

function exportsOf(mod: unknown): Partial<ProviderModule> {
  const m = mod as Partial<ProviderModule> & { default?: Partial<ProviderModule> }
  return typeof m.createProvider === 'function' ? m : (m.default ?? m)
}

/**
 * Imports the package for `name` (a known name such as `mock`, a scoped package name or a path;
 * see resolveProviderName) and creates its provider. A missing package gives ProviderMissingError naming it.
 */
export async function loadProvider(name: string, options?: Record<string, unknown>, importer: (specifier: string) => Promise<unknown> = applicationImporter()): Promise<Provider> {
  const packageName = resolveProviderName(name)
  let mod: Partial<ProviderModule>
  try {
    mod = exportsOf(await importer(packageName))
  } catch (err) {
    if (isModuleNotFound(err, packageName)) throw new ProviderMissingError(name, packageName, err, err instanceof PackageNotFound ? err.search : undefined)
    throw err
  }
  if (typeof mod.createProvider !== 'function') {
    throw new ProviderInvalidError(`package ${packageName} does not export createProvider(); is it an @rdma-session provider?`, { packageName })
  }
  const provider = await mod.createProvider(options)
  assertProvider(provider)
  return provider
}
