/**
 * CM join tokens: the compact form of a join token that fits rdma_cm's private data (a PASETO join
 * token is ~300 bytes; a REQ carries 56). Made and checked only by the ends that hold the session
 * secret, like join tokens:
 *
 *   token ID (8) | expiry, s since the epoch (4) | QP budget (2) | HMAC-SHA256 truncated (16) = 30 bytes
 *
 * The MAC covers the session ID and the first 14 bytes under a key derived from the session secret.
 * Checked into the same JoinClaims a PASETO token gives (scope: add-qps), so the session layer's join
 * checks (expiry, single admission, the remote's address, QP budget) apply unchanged.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'
import { InvalidArgumentError, JoinTokenError } from '../errors.js'
import type { JoinClaims } from '../control/join-token.js'

export const CM_JOIN_TOKEN_BYTES = 30
const BODY = 14
const MAX_TTL_MS = 7 * 86_400_000

function mac(secret: Uint8Array, sessionId: string, body: Uint8Array): Buffer {
  const key = Buffer.from(hkdfSync('sha256', secret, Buffer.from(sessionId), 'rdma-session cm join-token', 32))
  return createHmac('sha256', key).update(Buffer.from(sessionId, 'hex')).update(body).digest().subarray(0, 16)
}

export function createCmJoinToken(secret: Uint8Array, sessionId: string, options: { ttlMs?: number; maxQps?: number } = {}, now = Date.now()): Uint8Array {
  const ttl = options.ttlMs ?? MAX_TTL_MS
  if (!Number.isFinite(ttl) || ttl <= 0 || ttl > MAX_TTL_MS) throw new InvalidArgumentError('ttlMs must be between 1 ms and 7 days')
  const maxQps = options.maxQps ?? 1024
  if (!Number.isInteger(maxQps) || maxQps < 0 || maxQps > 0xffff) throw new InvalidArgumentError('maxQps must be an integer from 0 to 65535')
  const token = new Uint8Array(CM_JOIN_TOKEN_BYTES)
  const view = new DataView(token.buffer)
  token.set(randomBytes(8), 0)
  view.setUint32(8, Math.ceil((now + ttl) / 1000))
  view.setUint16(12, maxQps)
  token.set(mac(secret, sessionId, token.subarray(0, BODY)), BODY)
  return token
}

/** The claims of a CM join token for `sessionId`, or ERR_JOIN_TOKEN (malformed, forged, expired). */
export function verifyCmJoinToken(secret: Uint8Array, sessionId: string, token: Uint8Array, now = Date.now()): JoinClaims {
  if (!(token instanceof Uint8Array) || token.length !== CM_JOIN_TOKEN_BYTES) throw new JoinTokenError('malformed', `a CM join token is ${CM_JOIN_TOKEN_BYTES} bytes`)
  if (!timingSafeEqual(mac(secret, sessionId, token.subarray(0, BODY)), token.subarray(BODY))) {
    throw new JoinTokenError('forged', `the CM join token was not issued for session '${sessionId}'`, { sessionId })
  }
  const view = new DataView(token.buffer, token.byteOffset, token.byteLength)
  const exp = view.getUint32(8) * 1000
  if (exp <= now) throw new JoinTokenError('expired', `the CM join token expired ${Math.round((now - exp) / 1000)} s ago`, { sessionId, expiredAt: exp })
  return { sid: sessionId, jti: `cm:${Buffer.from(token.subarray(0, 8)).toString('hex')}`, exp, scope: ['add-qps'], maxQps: view.getUint16(12) }
}
