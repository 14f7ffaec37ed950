/**
 * addonStatus(): what `rdma-session doctor` reports about the native addon, without opening a
 * device: whether the .node file loads, where it came from (a prebuilt binary or a build from
 * source), and whether libibverbs loads. "Addon loaded, no device" and "addon missing" differ here.
 */
import type { AddonMissingReason } from './errors.js'
import { checkBinding, classifyLoadError, libibverbsOf, requireAddon, type AddonOrigin, type AddonSource } from './native.js'

export interface AddonStatus {
  /** 'loaded': the .node file loads and is rdma_verbs; 'missing': it does not (see reason). */
  readonly addon: 'loaded' | 'missing'
  readonly origin?: AddonOrigin
  /** The .node file (absent when a function supplied the binding). */
  readonly path?: string
  /** Present when the addon loaded: libibverbs is opened at run time, so it can be missing on its own. */
  readonly libibverbs?: { readonly loaded: boolean; readonly file: string; readonly error?: string }
  readonly reason?: AddonMissingReason
  /** The first line of the error, when something is missing. */
  readonly message?: string
}

/** Loads the addon (and libibverbs) the way the provider would; never throws. */
export function addonStatus(source?: AddonSource): AddonStatus {
  let loaded: ReturnType<typeof requireAddon>
  try {
    loaded = requireAddon(source)
    checkBinding(loaded.raw)
  } catch (err) {
    const e = classifyLoadError(err)
    return { addon: 'missing', reason: e.reason, message: e.message.split('\n')[0]! }
  }
  const libibverbs = libibverbsOf(loaded.raw as Parameters<typeof libibverbsOf>[0])
  const where = { origin: loaded.origin, ...(loaded.path !== undefined ? { path: loaded.path } : {}) }
  if (libibverbs.loaded) return { addon: 'loaded', ...where, libibverbs }
  return { addon: 'loaded', ...where, libibverbs, reason: 'libibverbs-missing', message: `libibverbs did not load: ${libibverbs.error ?? libibverbs.file}` }
}
