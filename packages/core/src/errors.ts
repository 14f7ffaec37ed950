/**
 * Core's error classes: one per failure, each with a stable `code`, on the base and codes of
 * @rdma-session/provider-interface (re-exported here, so they are imported from core as before).
 * Check errors with `isRdmaError(err, 'ERR_…')` rather than `instanceof`.
 */
import { ErrorCode as ProviderErrorCode, RdmaError } from '@rdma-session/provider-interface'

export {
  RdmaError, isRdmaError, registerErrorCodes, registeredErrorCode, type RdmaErrorCode, type RegisteredErrorCode,
  QpStateError, QpAttributeError, QueueFullError, InvalidArgumentError, UnsupportedError, EncryptionUnsupportedError, ClosedError,
} from '@rdma-session/provider-interface'

/** Every code core and the provider interface define (a provider's own codes: registerErrorCodes). */
export const ErrorCode = {
  ...ProviderErrorCode,
  SESSION_NOT_FOUND: 'ERR_SESSION_NOT_FOUND',
  SESSION_CLOSED: 'ERR_SESSION_CLOSED',
  REMOTE_MISMATCH: 'ERR_REMOTE_MISMATCH',
  QP_NOT_FOUND: 'ERR_QP_NOT_FOUND',
  ACCESS: 'ERR_ACCESS',
  OUT_OF_BOUNDS: 'ERR_OUT_OF_BOUNDS',
  PROVIDER_MISSING: 'ERR_PROVIDER_MISSING',
  PROVIDER_INVALID: 'ERR_PROVIDER_INVALID',
  /** A provider name that is neither a short name nor a package name (RDMA_SESSION_PROVIDER=SoftRoCE), or a typo of an installed provider. */
  PROVIDER_UNKNOWN: 'ERR_PROVIDER_UNKNOWN',
  /** The provider was built for another version range of @rdma-session/core than the one the app loaded. */
  PROVIDER_CORE_MISMATCH: 'ERR_PROVIDER_CORE_MISMATCH',
  /** The provider implements another major version of the provider interface than this core (SPECIFICATION_VERSION), or declares none. */
  PROVIDER_SPEC_MISMATCH: 'ERR_PROVIDER_SPEC_MISMATCH',
  /** Nothing listens at the address dialled (ECONNREFUSED, or no socket file): the peer or daemon is not running. */
  CONNECTION_REFUSED: 'ERR_CONNECTION_REFUSED',
  WORK_COMPLETION: 'ERR_WORK_COMPLETION',
  PEER: 'ERR_PEER',
  AUTH: 'ERR_AUTH',
  PROTOCOL: 'ERR_PROTOCOL',
  JOIN_TOKEN: 'ERR_JOIN_TOKEN',
  RATE_LIMIT: 'ERR_RATE_LIMIT',
  TIMEOUT: 'ERR_TIMEOUT',
  /** The peer refused for now (connection limit, shutting down): retry later. */
  BUSY: 'ERR_BUSY',
  /** A daemon socket, token file or their directory is not this user's alone (`details.reason`: owner, mode, type, missing). */
  UNSAFE_PATH: 'ERR_UNSAFE_PATH',
  /** A per-peer quota (QPs, memory, sessions) is used up; `details.limit` names it. */
  QUOTA: 'ERR_QUOTA',
  /** A provider broke a rule of the SPI (a completion out of post order, a completion for no pending WR); the QP is moved to ERR. */
  PROVIDER_CONTRACT: 'ERR_PROVIDER_CONTRACT',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

export class SessionNotFoundError extends RdmaError {
  constructor(sessionId: string) {
    super(ErrorCode.SESSION_NOT_FOUND, `no session with ID '${sessionId}'; list the established ones with sessions.list()`, { sessionId })
  }
}

export class SessionClosedError extends RdmaError {
  constructor(sessionId: string) {
    super(ErrorCode.SESSION_CLOSED, `session '${sessionId}' is closed; create a new session`, { sessionId })
  }
}

export class RemoteMismatchError extends RdmaError {
  constructor(sessionId: string, expected: string, got: string) {
    super(ErrorCode.REMOTE_MISMATCH, `session '${sessionId}' goes to ${expected}, not ${got}: QPs can only join a session with the same remote`, { sessionId, expected, got })
  }
}

export class QpNotFoundError extends RdmaError {
  constructor(qpn: number, sessionId?: string) {
    super(ErrorCode.QP_NOT_FOUND, `no QP ${qpn}${sessionId ? ` in session '${sessionId}'` : ''}`, { qpn, sessionId })
  }
}

export class AccessError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.ACCESS, message, details)
  }
}

export class OutOfBoundsError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.OUT_OF_BOUNDS, message, details)
  }
}

/**
 * A provider package that the application cannot load. `details.searched` lists the folders whose
 * node_modules (and their parents') were searched; `details.installIn` is the application's package.
 */
export class ProviderMissingError extends RdmaError {
  constructor(name: string, packageName: string, cause?: unknown, search?: { readonly places: ReadonlyArray<{ readonly role: string; readonly dir: string }>; readonly appDir: string }) {
    const where = search === undefined
      ? ''
      : ` It was looked for next to @rdma-session/core and from ${search.places.map((p) => `the ${p.role} ${p.dir}`).join(' and from ')} (each folder's node_modules and its parents').`
    const install = search === undefined ? `pnpm add ${packageName}` : `pnpm add ${packageName} (in ${search.appDir}, the application's package)`
    super(ErrorCode.PROVIDER_MISSING, `provider '${name}' needs the package ${packageName}, which this application cannot load.${where} Install it with: ${install}`, {
      provider: name,
      packageName,
      searched: search?.places.map((p) => p.dir) ?? [],
      installIn: search?.appDir ?? null,
    })
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause
  }
}

/** A provider name that is neither a short name nor a package name, or a typo of an installed provider; `details.suggestion` is the near miss, if any. */
export class ProviderUnknownError extends RdmaError {
  constructor(name: string, installed: readonly string[], suggestion: string | null) {
    super(
      ErrorCode.PROVIDER_UNKNOWN,
      `unknown provider '${name}'${suggestion === null ? '' : `; did you mean '${suggestion}'?`} Installed providers: ${installed.length === 0 ? 'none' : installed.join(', ')}. A short name <name> stands for the package @rdma-session/provider-<name>; a third-party provider is named by its scoped package name (@scope/name)`,
      { provider: name, installed: [...installed], suggestion },
    )
  }
}

export class ProviderCoreMismatchError extends RdmaError {
  constructor(packageName: string, packageVersion: string, coreRange: string, coreVersion: string) {
    super(
      ErrorCode.PROVIDER_CORE_MISMATCH,
      `${packageName} ${packageVersion} works with @rdma-session/core ${coreRange}, but this app loaded core ${coreVersion}; install versions that match (pnpm add @rdma-session/core@'${coreRange}', or upgrade ${packageName}); \`npm ls @rdma-session/core\` shows every copy installed`,
      { packageName, packageVersion, coreRange, coreVersion },
    )
  }
}

/** The provider implements another major version of the provider interface than this core, or states none. */
export class ProviderSpecMismatchError extends RdmaError {
  constructor(provider: string, providerVersion: string | null, coreVersion: string) {
    const stated = providerVersion === null ? 'states no specificationVersion (a provider built before the provider interface was versioned, or not a provider)' : `implements provider interface ${providerVersion}`
    super(
      ErrorCode.PROVIDER_SPEC_MISMATCH,
      `provider '${provider}' ${stated}, but this @rdma-session/core drives provider interface ${coreVersion} (the major versions must match); install a provider release built for @rdma-session/provider-interface ${coreVersion.split('.')[0]}.x, or a core that matches the provider`,
      { provider, providerVersion, coreVersion },
    )
  }
}

/** Nothing listens where a control connection was dialled (the peer, or the session daemon, is not running). */
export class ConnectionRefusedError extends RdmaError {
  constructor(target: string, message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.CONNECTION_REFUSED, message, { target, ...details })
  }
}

export class ProviderInvalidError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.PROVIDER_INVALID, message, details)
  }
}

export class PeerError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.PEER, message, details)
  }
}

/** The control-plane handshake failed: wrong pre-shared key, unknown or untrusted identity, bad signature, tampered transcript. */
export class AuthError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.AUTH, message, details)
  }
}

/** A control-plane message was malformed, unknown, out of order or too large; the connection is closed. */
export class ProtocolError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.PROTOCOL, message, details)
  }
}

/** A request from another connection or process named a session without a valid join token (missing, expired, wrong scope, forged). */
export class JoinTokenError extends RdmaError {
  constructor(reason: 'missing' | 'malformed' | 'forged' | 'expired' | 'scope' | 'exhausted', message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.JOIN_TOKEN, message, { reason, ...details })
  }
}

/** A daemon's socket, token or directory may have been made by another user: refused before anything is sent. */
export class UnsafePathError extends RdmaError {
  constructor(path: string, message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.UNSAFE_PATH, message, { path, ...details })
  }
}

/** A peer would hold more QPs, sessions or QP memory than its quota allows; `details.limit` names which. */
export class QuotaError extends RdmaError {
  constructor(message: string, details: Record<string, unknown>) {
    super(ErrorCode.QUOTA, message, details)
  }
}

/** A peer created QPs faster than the control plane allows. */
export class RateLimitError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.RATE_LIMIT, message, details)
  }
}

/** A control-plane request or handshake got no answer in time. */
export class TimeoutError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.TIMEOUT, message, details)
  }
}

/** The peer refused a connection for now (at its connection limit, closing): retry with backoff; reconnects do so by themselves within their grace period. */
export class BusyError extends RdmaError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ErrorCode.BUSY, message, details)
  }
}

/** A WR as a contract error names it: the application's wrId for a raw post, the post number for a promise operation. */
export interface ContractWr {
  readonly opcode: string
  readonly signaled: boolean
  /** The application's wrId (raw posts); null for a promise operation. */
  readonly wrId: number | null
  /** The QP's own sequence number for the post (1 for its first WR). */
  readonly post: number
}

/**
 * The provider broke the SPI on a QP: it completed `completed` before `skipped`, which had to
 * complete first, or completed a WR that was not pending. Core never reports such WRs as
 * successful: they fail with this error and the QP is moved to ERR.
 */
export class ProviderContractError extends RdmaError {
  constructor(provider: string, qpn: number, rule: 'out-of-order' | 'stray', queue: 'send' | 'recv', completed: ContractWr & { readonly status: string }, skipped: readonly ContractWr[]) {
    const name = (w: ContractWr): string => `${w.signaled ? '' : 'unsignaled '}${w.opcode} ${w.wrId === null ? `(post #${w.post})` : `wrId ${w.wrId}`}`
    const what = rule === 'stray'
      ? `completed ${name(completed)} with ${completed.status}, but no such WR is pending (completed twice, or never posted)`
      : `completed ${name(completed)} with ${completed.status} before ${skipped.map(name).join(', ')}, which must complete first (${queue === 'send' ? 'send' : 'receive'} completions come in post order; only unsignaled sends complete silently)`
    super(ErrorCode.PROVIDER_CONTRACT, `provider '${provider}' broke its contract on QP ${qpn}: it ${what}; the QP is moved to ERR and these WRs fail`, { provider, qpn, rule, queue, completed, skipped })
  }
}

/** Thrown by the promise of a work request whose completion status is not SUCCESS. */
export class WorkCompletionError extends RdmaError {
  readonly status: string
  constructor(status: string, opcode: string, qpn: number) {
    super(ErrorCode.WORK_COMPLETION, `${opcode} on QP ${qpn} completed with ${status}`, { status, opcode, qpn })
    this.status = status
  }
}
