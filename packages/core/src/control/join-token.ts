/**
 * Join tokens: a session holder lets another connection or process add QPs to
 * its session. A token is a PASETO v4.local token (XChaCha20 + BLAKE2b-MAC,
 * made and checked by the `paseto-ts` implementation) under a key derived from
 * the session secret, so only the two ends of the session can make or check
 * one. Its encrypted payload holds the claims (session, token ID, expiry,
 * scope, QP budget); its footer (authenticated, readable) holds the same
 * claims so the bearer can see where the token goes. The holder's copy also
 * carries the joiner's QP secret (derived from the session secret and the
 * token ID) after a `#`; only the PASETO token is presented to the peer, which
 * derives the same QP secret: keys never travel, and a joiner can key only its
 * own QPs. Single use is the peer's table of used token IDs.
 *
 *   v4.local.<payload>.<footer>#<qp secret base64url>
 */
import { hkdfSync, randomBytes } from 'node:crypto'
import { decrypt, encrypt } from 'paseto-ts/v4'
import { InvalidArgumentError, JoinTokenError } from '../errors.js'

export const JOIN_SCOPES = ['add-qps', 'remove-qp', 'rekey'] as const
export type JoinScope = (typeof JOIN_SCOPES)[number]

export interface JoinTokenOptions {
  /** What the joiner may do. Default ['add-qps', 'remove-qp']. */
  readonly scope?: readonly JoinScope[]
  /** Lifetime. Default 60000 ms. */
  readonly ttlMs?: number
  /** Most QPs the joiner may add with it. Default 1024. */
  readonly maxQps?: number
}

export interface JoinClaims {
  readonly sid: string
  readonly jti: string
  /** Expiry, ms since the epoch (the token itself carries the PASETO `exp` claim as an ISO 8601 time). */
  readonly exp: number
  readonly scope: readonly JoinScope[]
  readonly maxQps: number
}

const PASETO_PREFIX = 'v4.local.'
const KEY_SEPARATOR = '#'

/** The PASETO v4.local key (PASERK `k4.local.` form) of a session's tokens. */
function tokenKey(secret: Uint8Array, sessionId: string): string {
  return `k4.local.${Buffer.from(hkdfSync('sha256', secret, Buffer.from(sessionId), 'rdma-session join-token paseto v4.local', 32)).toString('base64url')}`
}

/** The secret the QPs added under a token are keyed with (both ends derive it from the session secret). */
export function joinQpSecret(secret: Uint8Array, sessionId: string, jti: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, Buffer.from(sessionId), `rdma-session join-token qps ${jti}`, 32))
}

/** The claims as the token carries them: PASETO's registered `sub` (the session), `jti` and `exp` (ISO 8601). */
function tokenClaims(c: JoinClaims): Record<string, unknown> {
  return { sub: c.sid, jti: c.jti, exp: new Date(c.exp).toISOString(), scope: c.scope, maxQps: c.maxQps }
}

export function createJoinToken(secret: Uint8Array, sessionId: string, options: JoinTokenOptions = {}, now = Date.now()): string {
  const scope = [...new Set(options.scope ?? ['add-qps', 'remove-qp'])]
  for (const s of scope) if (!(JOIN_SCOPES as readonly string[]).includes(s)) throw new InvalidArgumentError(`unknown join scope '${String(s)}'; use ${JOIN_SCOPES.join(', ')}`)
  const ttl = options.ttlMs ?? 60_000
  if (!Number.isFinite(ttl) || ttl <= 0 || ttl > 7 * 86_400_000) throw new InvalidArgumentError('ttlMs must be between 1 ms and 7 days')
  const maxQps = options.maxQps ?? 1024
  if (!Number.isInteger(maxQps) || maxQps < 0 || maxQps > 65536) throw new InvalidArgumentError('maxQps must be an integer from 0 to 65536')
  const claims: JoinClaims = { sid: sessionId, jti: randomBytes(12).toString('base64url'), exp: now + ttl, scope: scope as JoinScope[], maxQps }
  const token = encrypt(tokenKey(secret, sessionId), tokenClaims(claims), { footer: JSON.stringify(tokenClaims(claims)), addIat: false, addExp: false, validatePayload: false })
  return `${token}${KEY_SEPARATOR}${Buffer.from(joinQpSecret(secret, sessionId, claims.jti)).toString('base64url')}`
}

/** Splits a holder's token into what is presented to the peer (the PASETO token) and the joiner's QP secret; the claims come from its footer. */
export function splitJoinToken(token: string): { presented: string; qpSecret: Uint8Array; claims: JoinClaims } {
  const parts = typeof token === 'string' ? token.split(KEY_SEPARATOR) : []
  if (parts.length !== 2 || !parts[0]!.startsWith(PASETO_PREFIX)) throw new JoinTokenError('malformed', 'not a join token (expected v4.local.<payload>.<footer>#<key>); get one with session.createJoinToken()')
  const qpSecret = Buffer.from(parts[1]!, 'base64url')
  if (qpSecret.length !== 32) throw new JoinTokenError('malformed', 'the join token key part is malformed')
  const pieces = parts[0]!.split('.')
  if (pieces.length !== 4) throw new JoinTokenError('malformed', 'the join token has no footer')
  return { presented: parts[0]!, qpSecret: new Uint8Array(qpSecret), claims: readClaims(Buffer.from(pieces[3]!, 'base64url').toString('utf8')) }
}

function readClaims(json: unknown): JoinClaims {
  let c: Record<string, unknown>
  try {
    c = (typeof json === 'string' ? JSON.parse(json) : json) as Record<string, unknown>
  } catch {
    throw new JoinTokenError('malformed', 'the join token claims are not readable')
  }
  const exp = typeof c?.exp === 'string' ? Date.parse(c.exp) : Number.NaN
  if (typeof c !== 'object' || c === null || typeof c.sub !== 'string' || typeof c.jti !== 'string' || Number.isNaN(exp) || !Array.isArray(c.scope) || typeof c.maxQps !== 'number') {
    throw new JoinTokenError('malformed', 'the join token claims are missing fields')
  }
  return { sid: c.sub, jti: c.jti.slice(0, 32), exp, scope: c.scope.filter((s): s is JoinScope => (JOIN_SCOPES as readonly unknown[]).includes(s)), maxQps: c.maxQps }
}

/**
 * True for a v4.local token with a footer whose parts are canonical unpadded base64url. paseto-ts
 * also decodes padded or non-canonical base64 (published vectors 4-F-4 and 4-F-5 expect a refusal),
 * so join tokens are checked here first: one token has one spelling.
 */
export function isCanonicalPasetoToken(token: unknown): token is string {
  if (typeof token !== 'string' || !token.startsWith(PASETO_PREFIX)) return false
  const parts = token.slice(PASETO_PREFIX.length).split('.')
  return parts.length <= 2 && parts.every((p) => /^[A-Za-z0-9_-]*$/.test(p) && Buffer.from(p, 'base64url').toString('base64url') === p)
}

/** Checks a presented token (the PASETO v4.local token) for `sessionId`; returns its claims or throws ERR_JOIN_TOKEN saying why. */
export function verifyJoinToken(secret: Uint8Array, sessionId: string, presented: string, now = Date.now()): JoinClaims {
  if (!isCanonicalPasetoToken(presented) || presented.split('.').length !== 4) throw new JoinTokenError('malformed', 'malformed join token')
  let payload: unknown
  try {
    // validatePayload off: expiry is checked below against `now`, in milliseconds.
    payload = decrypt(tokenKey(secret, sessionId), presented, { validatePayload: false }).payload
  } catch {
    throw new JoinTokenError('forged', `the join token was not issued for session '${sessionId}' (PASETO authentication failed)`, { sessionId })
  }
  const claims = readClaims(payload)
  if (claims.sid !== sessionId) throw new JoinTokenError('forged', 'the join token names another session', { sessionId })
  if (claims.exp <= now) throw new JoinTokenError('expired', `the join token expired ${Math.round((now - claims.exp) / 1000)} s ago; ask the session holder for a new one`, { sessionId, expiredAt: claims.exp })
  return claims
}
