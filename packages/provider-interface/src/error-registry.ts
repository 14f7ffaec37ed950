/**
 * Codes a provider (or another package) adds beside ErrorCode, with what each means. Registered
 * codes are kept when an error crosses the control plane (core rebuilds a peer's error with its
 * code when the code is known here) and tools can explain them. The registry is process-wide,
 * shared by every copy of this package.
 */
import { InvalidArgumentError, type RdmaErrorCode } from './errors.js'

export interface RegisteredErrorCode {
  readonly code: RdmaErrorCode
  /** The package that registered it, e.g. `@rdma-session/provider-verbs`. */
  readonly owner: string
  /** One sentence: what failed and what to look at. */
  readonly explanation: string
}

const REGISTRY = Symbol.for('@rdma-session/error-codes')
const CODE = /^ERR_[A-Z0-9]+(?:_[A-Z0-9]+)*$/

function registry(): Map<string, RegisteredErrorCode> {
  const g = globalThis as { [REGISTRY]?: Map<string, RegisteredErrorCode> }
  return (g[REGISTRY] ??= new Map())
}

/**
 * Registers `owner`'s error codes (`{ ERR_VERBS: 'a libibverbs call failed' }`). Registering a
 * code again for the same owner replaces its explanation; a code another owner registered is
 * refused (ERR_INVALID_ARGUMENT), as is a code not shaped `ERR_UPPER_CASE`.
 */
export function registerErrorCodes(owner: string, codes: Readonly<Record<string, string>>): void {
  const known = registry()
  for (const code of Object.keys(codes)) {
    if (!CODE.test(code)) throw new InvalidArgumentError(`error code '${code}' of ${owner} is not shaped ERR_UPPER_CASE`, { owner, code })
    const other = known.get(code)
    if (other !== undefined && other.owner !== owner) throw new InvalidArgumentError(`error code ${code} is registered by ${other.owner}; ${owner} cannot register it too`, { owner, code, registeredBy: other.owner })
  }
  for (const [code, explanation] of Object.entries(codes)) known.set(code, { code: code as RdmaErrorCode, owner, explanation })
}

/** What registerErrorCodes recorded for `code`, or undefined. */
export function registeredErrorCode(code: string): RegisteredErrorCode | undefined {
  return registry().get(code)
}
