/** Failures several commands share, worded once so every command reports them alike. */
import { existsSync } from 'node:fs'
import { isRdmaError, suggestProvider } from '@rdma-session/core'
import { UsageError } from './command.js'

/** A failure with a stable code, printed as `rdma-session <command>: <code>: <message>` (exit 1). */
export class CommandError extends Error {
  override readonly name = 'CommandError'
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** The providers the commands know (the CLI ships with mock and softroce; verbs is an optional peer). */
export const KNOWN_PROVIDERS = ['mock', 'softroce', 'verbs'] as const
export type KnownProvider = (typeof KNOWN_PROVIDERS)[number]

/** Checks a --provider/--require value: unknown names are a usage error (exit 2) with a "did you mean". */
export function knownProvider(name: string): KnownProvider {
  if ((KNOWN_PROVIDERS as readonly string[]).includes(name)) return name as KnownProvider
  const suggestion = suggestProvider(name, KNOWN_PROVIDERS)
  throw new UsageError(`unknown provider '${name}'${suggestion === null ? '' : `; did you mean '${suggestion}'?`} (known providers: ${KNOWN_PROVIDERS.join(', ')})`)
}

/**
 * The error for "no daemon to talk to": no socket, no token file, or nothing listening.
 * Anything else (a token others can read, a wrong token) passes through unchanged.
 */
export function daemonMissing(err: unknown, socketPath: string, tokenFile: string): unknown {
  const errno = (err as { code?: unknown } | null)?.code
  const refused = isRdmaError(err, 'ERR_CONNECTION_REFUSED')
  // A missing token file or socket comes as ENOENT, or as ERR_UNSAFE_PATH naming ENOENT (the owner is checked first).
  const enoent = errno === 'ENOENT' || /\bENOENT\b/.test(String((err as { message?: unknown } | null)?.message))
  const noToken = enoent && !existsSync(tokenFile)
  if (!refused && !noToken && !(enoent && !existsSync(socketPath))) return err
  const why = !existsSync(socketPath) ? `no socket at ${socketPath}` : noToken ? `no token file ${tokenFile}` : `nothing listens at ${socketPath}`
  return new CommandError(
    'ERR_DAEMON_MISSING',
    `no session daemon is running here (${why}); start one with 'rdma-session daemon' (in another terminal, or as a service), or point to it with --socket/--token-file or RDMA_SESSION_SOCKET`,
  )
}
