/**
 * Finds a provider by name (RDMA_SESSION_PROVIDER) with a dynamic import, as the application
 * would import it (see provider-resolution.ts), and checks it looks like one.
 */
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ProviderInvalidError, ProviderMissingError, ProviderUnknownError } from './errors.js'
import { installedProviders, isShortProviderName, resolveProviderName, suggestProvider } from './provider-names.js'
import { assertProvider } from './provider-shape.js'
import { describeProviderSearch, providerSearchPlaces, resolvePackageFrom, type ProviderSearch, type ProviderSearchPlace } from './provider-resolution.js'
import type { Provider } from '@rdma-session/provider-interface'

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
 * Imports the package for `name` (a short name such as `mock`, a scoped package name or a path;
 * see resolveProviderName) and creates its provider. A missing package gives ProviderMissingError
 * naming it, unless the short name is a near miss of an installed provider (a typo): then
 * ProviderUnknownError with a "did you mean". `places`: where installed providers are looked for.
 */
export async function loadProvider(name: string, options?: Record<string, unknown>, importer: (specifier: string) => Promise<unknown> = applicationImporter(), places: readonly ProviderSearchPlace[] = providerSearchPlaces()): Promise<Provider> {
  const packageName = resolveProviderName(name, places)
  let mod: Partial<ProviderModule>
  try {
    mod = exportsOf(await importer(packageName))
  } catch (err) {
    if (!isModuleNotFound(err, packageName)) throw err
    if (isShortProviderName(name)) {
      const installed = installedProviders(places)
      const suggestion = suggestProvider(name, installed)
      if (suggestion !== null && suggestion !== name) throw new ProviderUnknownError(name, installed, suggestion)
    }
    throw new ProviderMissingError(name, packageName, err, err instanceof PackageNotFound ? err.search : undefined)
  }
  if (typeof mod.createProvider !== 'function') {
    throw new ProviderInvalidError(`package ${packageName} does not export createProvider(); is it an @rdma-session provider?`, { packageName })
  }
  const provider = await mod.createProvider(options)
  assertProvider(provider)
  return provider
}
