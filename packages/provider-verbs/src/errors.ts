/**
 * Errors of the verbs provider. They extend the provider interface's RdmaError (same brand, so
 * `isRdmaError` works): ERR_ADDON_MISSING and ERR_NO_DEVICE are the interface's codes, ERR_VERBS
 * is this package's own, registered so a peer's ERR_VERBS keeps its code across the control plane.
 */
import { ErrorCode, RdmaError, registerErrorCodes } from '@rdma-session/provider-interface'

export const VerbsErrorCode = {
  /** The native addon, or libibverbs itself, cannot be loaded. */
  ADDON_MISSING: ErrorCode.ADDON_MISSING,
  /** libibverbs loads but there is no usable RDMA device (no kernel support, none configured, no RoCEv2 GID). */
  NO_DEVICE: ErrorCode.NO_DEVICE,
  /** A verbs call failed; `errno` and `verb` say which and why. */
  VERBS: 'ERR_VERBS',
} as const
export type VerbsErrorCode = (typeof VerbsErrorCode)[keyof typeof VerbsErrorCode]

registerErrorCodes('@rdma-session/provider-verbs', { [VerbsErrorCode.VERBS]: 'a libibverbs call failed; details.errno, errnoName and verb say which and why' })

/** What to do when RDMA is unavailable, in the order worth trying. */
export const SOFTROCE_HINT = 'or run without RDMA hardware or kernel support: use @rdma-session/provider-softroce (RDMA_SESSION_PROVIDER=softroce)'

function withSolutions(summary: string, solutions: readonly string[]): string {
  return `${summary}\nPossible solutions:\n${solutions.map((s) => `- ${s}`).join('\n')}`
}

export type AddonMissingReason = 'platform' | 'not-built' | 'libibverbs-missing' | 'load-failed'

/** ERR_ADDON_MISSING: the addon (or the libibverbs it links) cannot be loaded. `details.solutions` lists the fixes. */
export class AddonMissingError extends RdmaError {
  readonly reason: AddonMissingReason
  readonly solutions: readonly string[]
  constructor(reason: AddonMissingReason, summary: string, solutions: readonly string[], cause?: unknown) {
    super(VerbsErrorCode.ADDON_MISSING, withSolutions(`provider-verbs: ${summary}`, solutions), { reason, solutions })
    this.reason = reason
    this.solutions = solutions
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause
  }
}

export type NoDeviceReason = 'no-kernel-support' | 'no-devices' | 'device-not-found' | 'no-active-port' | 'no-roce-gid'

/** ERR_NO_DEVICE: no usable RDMA device. `details.solutions` lists the fixes (e.g. `rdma link add`). */
export class NoDeviceError extends RdmaError {
  readonly reason: NoDeviceReason
  readonly solutions: readonly string[]
  constructor(reason: NoDeviceReason, summary: string, solutions: readonly string[], details: Record<string, unknown> = {}) {
    super(VerbsErrorCode.NO_DEVICE, withSolutions(`provider-verbs: ${summary}`, solutions), { reason, solutions, ...details })
    this.reason = reason
    this.solutions = solutions
  }
}

/** ERR_VERBS: a libibverbs call failed. Carries the errno, its name (EINVAL) and the verb. */
export class VerbsError extends RdmaError {
  readonly errno: number
  readonly errnoName: string
  readonly verb: string
  constructor(verb: string, errno: number, errnoName: string, message: string, details: Record<string, unknown> = {}) {
    super(VerbsErrorCode.VERBS, message, { verb, errno, errnoName, ...details })
    this.errno = errno
    this.errnoName = errnoName
    this.verb = verb
  }
}

/** True for an error of this package with the given code (works across duplicate copies, like isRdmaError). */
export function isVerbsError(err: unknown, code: VerbsErrorCode): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code && err instanceof Error
}
