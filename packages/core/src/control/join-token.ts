/**
 * Join tokens: a session holder lets another connection or process add QPs to
 * its session. The token names the session, an expiry, a scope and a QP
 * budget, MACed (HMAC-SHA256) with a key derived from the session secret, so
 * only the two ends of the session can make or check one. The holder's copy
 * also carries the joiner's QP secret (derived from the session secret and the
 * token ID); only `payload.mac` is presented to the peer, which derives the
 * same QP secret: keys never travel, and a joiner can key only its own QPs.
 *
 *   rsj1.<payload base64url>.<mac base64url>.<qp secret base64url>
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'
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
  readonly exp: number
  readonly scope: readonly JoinScope[]
  readonly maxQps: number
}

const PREFIX = 'rsj1'

function tokenKey(secret: Uint8Array, sessionId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.from(sessionId), 'rdma-session join-token mac', 32))
}

/** The secret the QPs added under a token are keyed with (both ends derive it from the session secret). */
export function joinQpSecret(secret: Uint8Array, sessionId: string, jti: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, Buffer.from(sessionId), `rdma-session join-token qps ${jti}`, 32))
}

export function createJoinToken(secret: Uint8Array, sessionId: string, options: JoinTokenOptions = {}, now = Date.now()): string {
  const scope = [...new Set(options.scope ?? ['add-qps', 'remove-qp'])]
  for (const s of scope) if (!(JOIN_SCOPES as readonly string[]).includes(s)) throw new InvalidArgumentError(`unknown join scope '${String(s)}'; use ${JOIN_SCOPES.join(', ')}`)
  const ttl = options.ttlMs ?? 60_000
  if (!Number.isFinite(ttl) || ttl <= 0 || ttl > 7 * 86_400_000) throw new InvalidArgumentError('ttlMs must be between 1 ms and 7 days')
  const maxQps = options.maxQps ?? 1024
  if (!Number.isInteger(maxQps) || maxQps < 0 || maxQps > 65536) throw new InvalidArgumentError('maxQps must be an integer from 0 to 65536')
  const claims: JoinClaims = { sid: sessionId, jti: randomBytes(12).toString('base64url'), exp: now + ttl, scope: scope as JoinScope[], maxQps }
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url')
  const mac = createHmac('sha256', tokenKey(secret, sessionId)).update(`${PREFIX}.${payload}`).digest('base64url')
  return `${PREFIX}.${payload}.${mac}.${Buffer.from(joinQpSecret(secret, sessionId, claims.jti)).toString('base64url')}`
}

/** Splits a holder's token into what is presented to the peer and the joiner's QP secret. */
export function splitJoinToken(token: string): { presented: string; qpSecret: Uint8Array; claims: JoinClaims } {
  const parts = typeof token === 'string' ? token.split('.') : []
  if (parts.length !== 4 || parts[0] !== PREFIX) throw new JoinTokenError('malformed', 'not a join token (expected rsj1.<payload>.<mac>.<key>); get one with session.createJoinToken()')
  const qpSecret = Buffer.from(parts[3]!, 'base64url')
  if (qpSecret.length !== 32) throw new JoinTokenError('malformed', 'the join token key part is malformed')
  return { presented: `${parts[0]}.${parts[1]}.${parts[2]}`, qpSecret: new Uint8Array(qpSecret), claims: readClaims(parts[1]!) }
}

function readClaims(payload: string): JoinClaims {
  let c: Partial<JoinClaims>
  try {
    c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Partial<JoinClaims>
  } catch {
    throw new JoinTokenError('malformed', 'the join token payload is not readable')
  }
  if (typeof c !== 'object' || c === null || typeof c.sid !== 'string' || typeof c.jti !== 'string' || typeof c.exp !== 'number' || !Array.isArray(c.scope) || typeof c.maxQps !== 'number') {
    throw new JoinTokenError('malformed', 'the join token payload is missing fields')
  }
  return { sid: c.sid, jti: c.jti.slice(0, 32), exp: c.exp, scope: c.scope.filter((s): s is JoinScope => (JOIN_SCOPES as readonly unknown[]).includes(s)), maxQps: c.maxQps }
}

/** Checks a presented token (`rsj1.payload.mac`) for `sessionId`; returns its claims or throws ERR_JOIN_TOKEN saying why. */
export function verifyJoinToken(secret: Uint8Array, sessionId: string, presented: string, now = Date.now()): JoinClaims {
  const parts = typeof presented === 'string' ? presented.split('.') : []
  if (parts.length !== 3 || parts[0] !== PREFIX) throw new JoinTokenError('malformed', 'malformed join token')
  const expected = createHmac('sha256', tokenKey(secret, sessionId)).update(`${PREFIX}.${parts[1]}`).digest()
  const got = Buffer.from(parts[2]!, 'base64url')
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) throw new JoinTokenError('forged', `the join token was not issued for session '${sessionId}' (MAC mismatch)`, { sessionId })
  const claims = readClaims(parts[1]!)
  if (claims.sid !== sessionId) throw new JoinTokenError('forged', 'the join token names another session', { sessionId })
  if (claims.exp <= now) throw new JoinTokenError('expired', `the join token expired ${Math.round((now - claims.exp) / 1000)} s ago; ask the session holder for a new one`, { sessionId, expiredAt: claims.exp })
  return claims
}
