/**
 * Roles of the local processes that share a session through the daemon. The
 * process that created a session is its creator: it may close it, rekey it,
 * name another creator and grant rights. A process that joins gets the scope
 * of the token it joined with: by default it manages only its own QPs (add
 * them, remove them, leave). A creator widens that by granting a token with
 * more scope ('rekey', 'close', 'creator'); the daemon remembers each grant by
 * token ID (single use, until the token expires).
 */
import { InvalidArgumentError, JoinTokenError } from '../errors.js'

export const DAEMON_SCOPES = ['add-qps', 'remove-qp', 'rekey', 'close', 'creator'] as const
export type DaemonScope = (typeof DAEMON_SCOPES)[number]

/** What a joiner may do without a grant: its own QPs. */
export const JOINER_SCOPE: readonly DaemonScope[] = ['add-qps', 'remove-qp']
/** What the creator may do. */
export const CREATOR_SCOPE: readonly DaemonScope[] = DAEMON_SCOPES

export function checkScopes(scope: readonly unknown[]): DaemonScope[] {
  for (const s of scope) if (!(DAEMON_SCOPES as readonly unknown[]).includes(s)) throw new InvalidArgumentError(`unknown scope '${String(s)}'; use ${DAEMON_SCOPES.join(', ')}`)
  return [...new Set([...JOINER_SCOPE, ...(scope as DaemonScope[])])]
}

/** Throws ERR_JOIN_TOKEN (reason 'scope') unless `scope` allows `op` ('creator' allows everything). */
export function requireScope(scope: ReadonlySet<DaemonScope>, op: DaemonScope, sessionId: string, what: string): void {
  if (scope.has(op) || scope.has('creator')) return
  throw new JoinTokenError('scope', `${what} needs the '${op}' right on session '${sessionId}': only its creator, or a process that joined with a token the creator granted with that scope, may do it (this process has: ${[...scope].join(', ')})`, { sessionId, op })
}

/** Grants a creator made, by token ID: a join with that token gets the granted scope (once). */
export class DaemonGrants {
  readonly #byToken = new Map<string, { scope: readonly DaemonScope[]; exp: number }>()

  add(jti: string, scope: readonly DaemonScope[], exp: number): void {
    this.#prune(Date.now())
    this.#byToken.set(jti, { scope, exp })
  }

  /** The scope a join with token `jti` gets: its grant (used up now), else the joiner scope. */
  take(jti: string, now = Date.now()): readonly DaemonScope[] {
    this.#prune(now)
    const grant = this.#byToken.get(jti)
    this.#byToken.delete(jti)
    return grant?.scope ?? JOINER_SCOPE
  }

  #prune(now: number): void {
    for (const [jti, g] of this.#byToken) if (g.exp <= now) this.#byToken.delete(jti)
  }
}
