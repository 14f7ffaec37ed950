/**
 * Which core a provider was built for, when it says: a provider that takes @rdma-session/core as
 * a peer dependency (one that also drives core's user-level API, as softroce's rdma_cm does)
 * names the range it accepts; createContext refuses a provider whose range does not hold the
 * running core's version (an app with two copies of core, or mismatched upgrades). Providers that
 * depend on @rdma-session/provider-interface only state coreRange null: their specificationVersion
 * is what core checks (provider-shape.ts).
 */
import { ProviderCoreMismatchError } from './errors.js'
import type { Provider } from '@rdma-session/provider-interface'

declare const __PACKAGE_VERSION__: string | undefined

/** The version of this copy of @rdma-session/core ('0.0.0-source' when run from source). */
export const CORE_VERSION: string = typeof __PACKAGE_VERSION__ === 'string' ? __PACKAGE_VERSION__ : '0.0.0-source'

type Triple = readonly [number, number, number]

function parseVersion(text: string): Triple | null {
  const m = /^\s*v?(\d+)(?:\.(\d+|[x*]))?(?:\.(\d+|[x*]))?(?:[-+][0-9A-Za-z.-]*)?\s*$/.exec(text)
  if (m === null) return null
  const n = (s: string | undefined): number => (s === undefined || s === 'x' || s === '*' ? -1 : Number(s))
  return [n(m[1]), n(m[2]), n(m[3])]
}

const cmp = (a: Triple, b: Triple): number => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]
const floor = (v: Triple): Triple => [Math.max(0, v[0]), Math.max(0, v[1]), Math.max(0, v[2])]

/** The test for one comparator such as ^0.1.0, ~1.2.3, >=1.0.0, <2, 1.2.x or 1.2.3; null when it does not parse. */
function comparator(text: string): ((v: Triple) => boolean) | null {
  const m = /^(\^|~|>=|<=|>|<|=)?(.*)$/.exec(text.trim())!
  const op = m[1] ?? ''
  const parsed = parseVersion(m[2]!)
  if (parsed === null) return null
  const base = floor(parsed)
  const [maj, min] = parsed
  let upper: Triple | null = null
  if (op === '^') upper = base[0] > 0 || min < 0 ? [base[0] + 1, 0, 0] : base[1] > 0 || parsed[2] < 0 ? [0, base[1] + 1, 0] : [0, 0, base[2] + 1]
  else if (op === '~' || (op === '' && (min < 0 || parsed[2] < 0))) upper = min < 0 ? [maj + 1, 0, 0] : [maj, min + 1, 0]
  switch (op) {
    case '>=': return (v) => cmp(v, base) >= 0
    case '>': return (v) => cmp(v, base) > 0
    case '<=': return (v) => cmp(v, base) <= 0
    case '<': return (v) => cmp(v, base) < 0
    default: return upper === null ? (v) => cmp(v, base) === 0 : (v) => cmp(v, base) >= 0 && cmp(v, upper) < 0
  }
}

/**
 * True when `version` lies in the npm range `range` (the forms package.json peer ranges use:
 * ^, ~, >=, <, x-ranges, exact versions, space-joined sets and `||`). Prerelease tags are ignored.
 * An unparsable range is not held against the provider (true).
 */
export function satisfiesRange(version: string, range: string): boolean {
  const v = parseVersion(version)
  if (v === null) return true
  if (range.trim() === '' || range.trim() === '*') return true
  return range.split('||').some((set) => {
    const parts = set.trim().split(/\s+/).filter((p) => p !== '')
    const checks = parts.map(comparator)
    if (checks.some((c) => c === null)) return true
    return checks.every((c) => c!(floor(v)))
  })
}

/** Throws ProviderCoreMismatchError when the provider says it needs another core than this one. */
export function checkProviderCore(provider: Provider, coreVersion: string = CORE_VERSION): void {
  const pkg = provider.package
  if (pkg === undefined || pkg.coreRange === null || coreVersion.endsWith('-source')) return
  if (!satisfiesRange(coreVersion, pkg.coreRange)) throw new ProviderCoreMismatchError(pkg.name, pkg.version, pkg.coreRange, coreVersion)
}
