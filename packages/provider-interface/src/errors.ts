/**
 * The errors providers throw, and the base every rdma-session error extends: each has a stable
 * `code`. Check errors with `isRdmaError(err, 'ERR_…')` rather than `instanceof`: the brand is a
 * global symbol, so the check works across duplicate copies of these packages.
 */

const BRAND = Symbol.for('@rdma-session/error')

/** The codes of the errors the provider interface defines (core adds its own; see registerErrorCodes for a provider's). */
export const ErrorCode = {
  QP_STATE: 'ERR_QP_STATE',
  QP_ATTR: 'ERR_QP_ATTR',
  QUEUE_FULL: 'ERR_QUEUE_FULL',
  INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT',
  UNSUPPORTED: 'ERR_UNSUPPORTED',
  ENCRYPTION_UNSUPPORTED: 'ERR_ENCRYPTION_UNSUPPORTED',
  CLOSED: 'ERR_CLOSED',
  /** A native provider's addon is not built for this platform or Node.js. */
  ADDON_MISSING: 'ERR_ADDON_MISSING',
  /** The provider loaded but found no usable device (no RDMA NIC, no rxe link). */
  NO_DEVICE: 'ERR_NO_DEVICE',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** Any error code: `ERR_` and upper-case words. Beside ErrorCode, core's and those a provider registers. */
export type RdmaErrorCode = `ERR_${string}`

export class RdmaError extends Error {
  readonly code: RdmaErrorCode
  readonly details: Record<string, unknown>

  constructor(code: RdmaErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message)
    this.name = new.target.name
    this.code = code
    this.details = details
    Object.defineProperty(this, BRAND, { value: true })
  }

  /** A plain record for the wire (control plane) or logs. */
  toJSON(): { name: string; code: RdmaErrorCode; message: string; details: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, details: this.details }
  }
}

/** True for any rdma-session error (from any copy of the packages), optionally with the given code. */
export function isRdmaError(err: unknown, code?: RdmaErrorCode): err is RdmaError {
  if (typeof err !== 'object' || err === null) return false
  if ((err as Record<symbol, unknown>)[BRAND] !== true) return false
  return code === undefined || (err as RdmaError).code === code
}

export class QpStateError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.QP_STATE, message, details)
  }
}

export class QpAttributeError extends RdmaError {
  constructor(attribute: string, message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.QP_ATTR, `QP attribute '${attribute}': ${message}`, { attribute, ...details })
  }
}

export class QueueFullError extends RdmaError {
  constructor(queue: 'send' | 'recv' | 'cq', depth: number) {
    super(ErrorCode.QUEUE_FULL, `${queue} queue is full (depth ${depth}); wait for completions or create the QP with a larger depth`, { queue, depth })
  }
}

export class InvalidArgumentError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.INVALID_ARGUMENT, message, details)
  }
}

export class UnsupportedError extends RdmaError {
  constructor(feature: string, provider: string) {
    super(ErrorCode.UNSUPPORTED, `provider '${provider}' does not support ${feature}`, { feature, provider })
  }
}

export class EncryptionUnsupportedError extends RdmaError {
  constructor(provider: string, suite: string) {
    super(ErrorCode.ENCRYPTION_UNSUPPORTED, `provider '${provider}' cannot encrypt with ${suite} (sessions are encrypted by default); pass encryption: 'preferred' to fall back to plaintext when an end cannot encrypt, encryption: 'none' for plaintext RoCEv2 (kernel rxe, RoCE NICs), or use a provider that encrypts`, { provider, suite })
  }
}

export class ClosedError extends RdmaError {
  constructor(what: string) {
    super(ErrorCode.CLOSED, `${what} is closed`, { what })
  }
}
