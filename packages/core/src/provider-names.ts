/**
 * What a provider name stands for. Core knows no provider by name: a short name such as `mock`
 * or `softroce` stands for the package `@rdma-session/provider-<name>` (the project's scope, so
 * nobody else can publish one); a third-party provider is named by its scoped package name or a
 * path. A "did you mean" is drawn from the providers installed where the loader looks.
 */
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { ProviderUnknownError } from './errors.js'
import { providerSearchPlaces, type ProviderSearchPlace } from './provider-resolution.js'
import { editDistance } from './util/edit-distance.js'

const SCOPE = '@rdma-session'
const PREFIX = 'provider-'
/** The project's package that is not a provider although its name starts with `provider-`. */
const NOT_A_PROVIDER = 'interface'

/** True for a short provider name: lower-case words joined by `-`, not itself a package name or `interface`. */
export function isShortProviderName(name: string): boolean {
  return /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/.test(name) && !name.startsWith(PREFIX) && name !== NOT_A_PROVIDER
}

/** The package a short provider name stands for: `softroce` -> `@rdma-session/provider-softroce`. */
export function providerPackageName(name: string): string {
  return `${SCOPE}/${PREFIX}${name}`
}

/** Short names of the @rdma-session/provider-* packages in the node_modules folders `import` would walk from `places`, sorted. */
export function installedProviders(places: readonly ProviderSearchPlace[] = providerSearchPlaces()): string[] {
  const found = new Set<string>()
  for (const place of places) {
    for (const modules of createRequire(join(place.dir, '__rdma_session_resolve__.js')).resolve.paths(SCOPE) ?? []) {
      let entries: string[]
      try {
        entries = readdirSync(join(modules, SCOPE))
      } catch {
        continue
      }
      for (const e of entries) if (e.startsWith(PREFIX) && isShortProviderName(e.slice(PREFIX.length))) found.add(e.slice(PREFIX.length))
    }
  }
  return [...found].sort()
}

/** The name in `known` (default: the installed providers) that `name` most likely stands for (case, a typo, the package name or its tail), or null. */
export function suggestProvider(name: string, known: readonly string[] = installedProviders()): string | null {
  const plain = name.toLowerCase().replace(new RegExp(`^${SCOPE}/`), '').replace(new RegExp(`^${PREFIX}`), '')
  let best: string | null = null
  let bestDistance = Infinity
  for (const k of known) {
    const d = editDistance(plain, k)
    if (d < bestDistance) [best, bestDistance] = [k, d]
  }
  return bestDistance <= Math.max(1, Math.floor((best?.length ?? 0) / 3)) ? best : null
}

/**
 * The package to import for a provider name: a short name (see isShortProviderName), a scoped
 * package name (@scope/name) or a path. Anything else (another case, an unscoped package name
 * that anyone could publish) is refused with ProviderUnknownError and a "did you mean".
 */
export function resolveProviderName(name: string, places?: readonly ProviderSearchPlace[]): string {
  if (isShortProviderName(name)) return providerPackageName(name)
  const scoped = /^@[a-z0-9][a-z0-9._~-]*\/[a-z0-9][a-z0-9._~-]*$/.test(name)
  const path = /^(\.{1,2}\/|\/|file:)/.test(name)
  if (scoped || path) return name
  const installed = installedProviders(places)
  throw new ProviderUnknownError(name, installed, suggestProvider(name, installed))
}
