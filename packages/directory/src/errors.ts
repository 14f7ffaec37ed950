/**
 * Directory errors: one class, a stable `code` per failure. They are core RdmaErrors (same brand),
 * so `isRdmaError(err)` holds; check the code with `isDirectoryError(err, 'ERR_DIRECTORY_…')`.
 */
import { RdmaError, isRdmaError, type ErrorCode } from '@rdma-session/core'

export const DirectoryErrorCode = {
  /** An entry is not JSON, too large, misses fields, has wrong types, or names another host than its key. */
  MALFORMED: 'ERR_DIRECTORY_MALFORMED',
  /** An entry's signature does not verify with the identity key it names. */
  SIGNATURE: 'ERR_DIRECTORY_SIGNATURE',
  /** An entry verifies but its key is neither trusted nor endorsed by a trusted authority. */
  UNTRUSTED: 'ERR_DIRECTORY_UNTRUSTED',
  /** No live entry with that name or session ID (or none this process may see). */
  NOT_FOUND: 'ERR_DIRECTORY_NOT_FOUND',
  /** Another identity holds the name under a live lease. */
  CONFLICT: 'ERR_DIRECTORY_CONFLICT',
  /** The backend (etcd) is unreachable or did not answer in time; `details.stale` says whether cached entries were used. */
  UNAVAILABLE: 'ERR_DIRECTORY_UNAVAILABLE',
  /** The directory (or a registration) was closed. */
  CLOSED: 'ERR_DIRECTORY_CLOSED',
  /** A configuration (URL, backend name, option) is not usable. */
  CONFIG: 'ERR_DIRECTORY_CONFIG',
} as const
export type DirectoryErrorCode = (typeof DirectoryErrorCode)[keyof typeof DirectoryErrorCode]

export class DirectoryError extends RdmaError {
  constructor(code: DirectoryErrorCode, message: string, details: Record<string, unknown> = {}) {
    // Core's ErrorCode union does not list directory codes; the brand and shape are the same.
    super(code as unknown as ErrorCode, message, details)
  }
}

/** True for a DirectoryError (from any copy of the package), optionally with the given code. */
export function isDirectoryError(err: unknown, code?: DirectoryErrorCode): err is DirectoryError {
  if (!isRdmaError(err)) return false
  const c = (err as { code: string }).code
  return code === undefined ? c.startsWith('ERR_DIRECTORY_') : c === code
}
