/**
 * Where a provider named by string is looked for, as the running application sees it: the
 * folder of its entry script (process.argv[1]; that script's package is the application) and
 * the working directory, each through the node_modules folders `import` would walk from there.
 */
import { createRequire } from 'node:module'
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { dirname, join, resolve, sep } from 'node:path'

/** A folder the loader resolves from, and what it is to the application. */
export interface ProviderSearchPlace {
  readonly role: "entry script's folder" | 'working directory'
  readonly dir: string
}

/** Where a provider package was looked for, and the folder of the application's package.json (where installing it helps). */
export interface ProviderSearch {
  readonly places: readonly ProviderSearchPlace[]
  readonly appDir: string
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path)
  } catch {
    return path
  }
}

/** The folders to resolve from, in order and without repeats: the entry script's, then the working directory. An empty `entry` means none (node -e, the REPL). */
export function providerSearchPlaces(entry: string | undefined = process.argv[1], cwd: string = process.cwd()): ProviderSearchPlace[] {
  const places: ProviderSearchPlace[] = []
  // Node runs the entry script from its real path (pnpm links it through symlinks): resolve from there.
  if (entry !== undefined && entry !== '') places.push({ role: "entry script's folder", dir: dirname(realpathOr(resolve(cwd, entry))) })
  if (!places.some((p) => p.dir === cwd)) places.push({ role: 'working directory', dir: cwd })
  return places
}

/** The nearest folder at or above `dir` with a package.json, not inside node_modules; `dir` itself when there is none. */
export function packageRootOf(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    if (d.split(sep).includes('node_modules')) return dir
    if (existsSync(join(d, 'package.json'))) return d
    if (dirname(d) === d) return dir
  }
}

/** What the application should be told: where the loader looked, and where to install. */
export function describeProviderSearch(places: readonly ProviderSearchPlace[]): ProviderSearch {
  const first = places[0]
  return { places, appDir: first === undefined ? process.cwd() : packageRootOf(first.dir) }
}

type ExportsEntry = string | null | { readonly [condition: string]: ExportsEntry } | readonly ExportsEntry[]

/** The file an `exports` entry names for `import` (conditions import, node, default; arrays: the first that names one). */
function importTarget(entry: ExportsEntry | undefined): string | undefined {
  if (entry === undefined || entry === null) return undefined
  if (typeof entry === 'string') return entry
  if (Array.isArray(entry)) {
    for (const e of entry as readonly ExportsEntry[]) {
      const t = importTarget(e)
      if (t !== undefined) return t
    }
    return undefined
  }
  const e = entry as { readonly [condition: string]: ExportsEntry }
  return importTarget(e['import']) ?? importTarget(e['node']) ?? importTarget(e['default'])
}

/**
 * The file `import(specifier)` would load for a bare package name from a module in `dir`, or
 * null when no node_modules folder on the way up (nor NODE_PATH) has the package. It follows the
 * package's "import" export condition, not "require": the app imported the ESM build, and a
 * second copy of the provider's classes would break `instanceof` (MockFabric, for one).
 */
export function resolvePackageFrom(specifier: string, dir: string): string | null {
  const lookup = createRequire(join(dir, '__rdma_session_resolve__.js')).resolve.paths(specifier) ?? []
  for (const modules of lookup) {
    const manifestPath = join(modules, specifier, 'package.json')
    if (!existsSync(manifestPath)) continue
    const root = realpathOr(dirname(manifestPath))
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { exports?: unknown; module?: string; main?: string }
    const exp = manifest.exports as ExportsEntry | undefined
    const dot = exp !== null && typeof exp === 'object' && !Array.isArray(exp) && '.' in exp ? (exp as Record<string, ExportsEntry>)['.'] : exp
    const target = importTarget(dot) ?? manifest.module ?? manifest.main ?? 'index.js'
    return join(root, target)
  }
  return null
}
