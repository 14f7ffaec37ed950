/**
 * The native parts of the providers, as `doctor --json` reports them under `native`: softroce's
 * socket helper and the verbs addon: loaded or missing, from a prebuilt binary or a build from
 * source, and for verbs whether libibverbs (opened at run time) loaded. "Addon loaded, no device"
 * is { status: 'loaded' } here and ERR_NO_DEVICE in the provider verdict; "addon missing" is
 * { status: 'missing' } here and ERR_ADDON_MISSING there.
 */
import type { Check } from './system-checks.js'

export type NativeOrigin = 'prebuilt' | 'built-from-source' | 'custom'

export interface NativeCheck {
  readonly package: string
  readonly component: 'socket-helper' | 'verbs-addon'
  /** 'unknown': the installed package predates the status function. */
  readonly status: 'loaded' | 'missing' | 'not-installed' | 'unknown'
  readonly origin?: NativeOrigin
  readonly path?: string
  /** verbs only, when the addon loaded: libibverbs is opened at run time, so it can be missing on its own. */
  readonly libibverbs?: 'loaded' | 'missing'
  readonly detail: string
}

interface HelperStatus { helper: 'loaded' | 'missing'; origin?: NativeOrigin; path?: string; sendPath: boolean; receivePath: boolean; batchedIo?: boolean; icrcEngine?: 'native' | 'zlib'; receiveRuns?: boolean; receiveRunsWhy?: string; why?: string }
interface AddonStatus { addon: 'loaded' | 'missing'; origin?: NativeOrigin; path?: string; libibverbs?: { loaded: boolean; file: string; error?: string }; message?: string }

const ORIGIN_TEXT: Record<NativeOrigin, string> = { prebuilt: 'prebuilt binary', 'built-from-source': 'built from source', custom: 'a path the app gave' }

function where(origin: NativeOrigin | undefined, path: string | undefined): Pick<NativeCheck, 'origin' | 'path'> {
  return { ...(origin !== undefined ? { origin } : {}), ...(path !== undefined ? { path } : {}) }
}

/** The softroce helper, from the package's nativeHelperStatus(). */
export function softroceNative(packageName: string, mod: Record<string, unknown> | undefined): NativeCheck {
  const base = { package: packageName, component: 'socket-helper' as const }
  if (mod === undefined) return { ...base, status: 'not-installed', detail: `${packageName} is not installed` }
  if (typeof mod.nativeHelperStatus !== 'function') return { ...base, status: 'unknown', detail: `${packageName} does not report its helper (an older version)` }
  const s = (mod.nativeHelperStatus as () => HelperStatus)()
  if (s.helper === 'missing') return { ...base, status: 'missing', ...where(undefined, s.path), detail: s.why ?? 'not loaded' }
  const paths = s.sendPath && s.receivePath ? `native send and receive paths${s.batchedIo === true ? ', batched I/O (sendmmsg, UDP GSO/GRO)' : s.batchedIo === false ? ` without batched I/O (${s.why ?? 'unavailable'})` : ''}` : s.why ?? 'native paths partly unused'
  const icrc = s.icrcEngine === 'native' ? '; ICRCs by the helper (carry-less multiplication)' : s.icrcEngine === 'zlib' ? '; ICRCs by zlib' : ''
  const runs = s.receiveRuns === true ? '; receive runs (WRITE/SEND packets checked and placed by the helper)' : s.receiveRuns === false ? `; no receive runs (${s.receiveRunsWhy ?? 'unavailable'})` : ''
  return { ...base, status: 'loaded', ...where(s.origin, s.path), detail: `loaded (${ORIGIN_TEXT[s.origin ?? 'custom']}): ${paths}${icrc}${runs}` }
}

/** The verbs addon, from the package's addonStatus(). */
export function verbsNative(packageName: string, mod: Record<string, unknown> | undefined): NativeCheck {
  const base = { package: packageName, component: 'verbs-addon' as const }
  if (mod === undefined) return { ...base, status: 'not-installed', detail: `${packageName} is not installed` }
  if (typeof mod.addonStatus !== 'function') return { ...base, status: 'unknown', detail: `${packageName} does not report its addon (an older version)` }
  const s = (mod.addonStatus as () => AddonStatus)()
  if (s.addon === 'missing') return { ...base, status: 'missing', detail: s.message ?? 'the addon does not load' }
  const lib = s.libibverbs?.loaded === false
    ? `libibverbs did not load (${s.libibverbs.error ?? s.libibverbs.file})`
    : 'libibverbs loaded'
  return { ...base, status: 'loaded', ...where(s.origin, s.path), libibverbs: s.libibverbs?.loaded === false ? 'missing' : 'loaded', detail: `loaded (${ORIGIN_TEXT[s.origin ?? 'custom']}); ${lib}` }
}

/** The report's system lines for the native parts. */
export function nativeSystemChecks(native: readonly NativeCheck[]): Check[] {
  return native.map((n): Check => {
    const name = n.component === 'socket-helper' ? 'softroce helper' : 'verbs addon'
    if (n.status === 'loaded' && n.libibverbs !== 'missing') return { name, status: 'ok', detail: n.detail }
    if (n.status === 'loaded') return { name, status: 'warn', detail: n.detail, remedy: 'install libibverbs: apt-get install -y libibverbs1 ibverbs-providers' }
    if (n.status === 'not-installed') return { name, status: 'warn', detail: n.detail, remedy: `npm install ${n.package}` }
    if (n.status === 'unknown') return { name, status: 'warn', detail: n.detail, remedy: `update ${n.package}` }
    return { name, status: n.component === 'verbs-addon' ? 'fail' : 'warn', detail: `missing: ${n.detail}`, remedy: `reinstall ${n.package} (its install script says whether a prebuilt binary was used, or why it built from source)` }
  })
}
