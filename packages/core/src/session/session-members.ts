/**
 * Who besides the session's own channel may act on a session: joiners that
 * presented a join token (another connection, or another process on the
 * session's remote host). Each member has its endpoint, its channel, its scope,
 * a QP budget and its own QP secret; the QPs it added are its own.
 */
import { joinQpSecret, verifyJoinToken, type JoinClaims, type JoinScope } from '../control/join-token.js'
import { verifyCmJoinToken } from '../cm/cm-join-token.js'
import { InvalidArgumentError, isRdmaError, JoinTokenError, RemoteMismatchError, SessionNotFoundError } from '../errors.js'
import type { QueuePair } from '../queue-pair.js'
import type { PeerChannel } from './peer-channel.js'
import { endpointKey, type EndpointRecord, type JoinSessionRequest } from './records.js'

export interface SessionMember {
  readonly from: EndpointRecord
  readonly key: string
  readonly channel: PeerChannel
  /** Keys this member's QPs (joinQpSecret of its token). */
  readonly secret: Uint8Array
  readonly scope: ReadonlySet<JoinScope>
  readonly maxQps: number
  /** The ID of the token that admitted it. */
  readonly tokenId?: string
  added: number
}

type JoinableSession = { readonly id: string; readonly remote: EndpointRecord; readonly remoteKey: string; readonly peer: PeerChannel }

export class SessionMembers {
  readonly #bySession = new Map<string, SessionMember[]>()
  readonly #owner = new WeakMap<QueuePair, SessionMember>()
  /** Token IDs already used, with their expiry: tokens are single-use. */
  readonly #usedTokens = new Map<string, number>()

  /**
   * Checks a join request (token MAC and expiry with the session secret, single
   * use, joiner on the session's remote host) and adds the joiner as a member.
   */
  admit(session: JoinableSession, secret: Uint8Array | undefined, request: JoinSessionRequest, channel: PeerChannel): SessionMember {
    // A token that does not verify proves nothing: the answer is the one an unknown ID gets.
    if (secret === undefined) throw new SessionNotFoundError(session.id)
    const now = Date.now()
    const claims = verifiedOrUnknown(() => verifyJoinToken(secret, session.id, request.token, now), session.id)
    return this.#admitVerified(session, secret, claims, request.from, channel, now)
  }

  /**
   * The same checks for a CM join token (rdma_cm private data: one CM connection per QP). The
   * first connection with a token admits its bearer as a member; later connections with the same
   * token, from the same address and over the same channel, are that member again (its QP budget
   * counts them all).
   */
  admitCm(session: JoinableSession, secret: Uint8Array | undefined, token: Uint8Array, from: EndpointRecord, channel: PeerChannel): SessionMember {
    if (secret === undefined) throw new SessionNotFoundError(session.id)
    const now = Date.now()
    const claims = verifiedOrUnknown(() => verifyCmJoinToken(secret, session.id, token, now), session.id)
    const known = this.of(session.id).find((m) => m.tokenId === claims.jti)
    if (known !== undefined) {
      if (known.channel !== channel || known.from.address !== from.address) throw new JoinTokenError('exhausted', 'this join token was used already; tokens are single-use', { sessionId: session.id })
      return known
    }
    return this.#admitVerified(session, secret, claims, from, channel, now)
  }

  /** Single use, joiner on the session's remote host, not the holder itself: then a member. */
  #admitVerified(session: JoinableSession, secret: Uint8Array, claims: JoinClaims, from: EndpointRecord, channel: PeerChannel, now: number): SessionMember {
    for (const [jti, exp] of this.#usedTokens) if (exp <= now) this.#usedTokens.delete(jti)
    if (this.#usedTokens.has(claims.jti)) throw new JoinTokenError('exhausted', 'this join token was used already; tokens are single-use', { sessionId: session.id })
    const key = endpointKey(from)
    if (from.address !== session.remote.address) throw new RemoteMismatchError(session.id, session.remoteKey, key)
    if (channel === session.peer && key === session.remoteKey) throw new InvalidArgumentError('the session holder needs no join token')
    this.#usedTokens.set(claims.jti, claims.exp)
    return this.add(session.id, { from, channel, secret: joinQpSecret(secret, session.id, claims.jti), scope: new Set(claims.scope), maxQps: claims.maxQps, tokenId: claims.jti })
  }

  add(sessionId: string, init: Omit<SessionMember, 'key' | 'added'>): SessionMember {
    const member: SessionMember = { ...init, key: endpointKey(init.from), added: 0 }
    const list = (this.#bySession.get(sessionId) ?? []).filter((m) => !(m.channel === member.channel && m.key === member.key))
    list.push(member)
    this.#bySession.set(sessionId, list)
    return member
  }

  /**
   * Who a request about `session` comes from: null for the session's remote on
   * its own channel, else a member whose scope allows `op`. Anyone else gets
   * ERR_SESSION_NOT_FOUND, exactly as for an ID no session has (no existence
   * oracle); a member beyond its token's scope gets ERR_JOIN_TOKEN.
   */
  authorize(session: JoinableSession, from: EndpointRecord, channel: PeerChannel, op: JoinScope | null): SessionMember | null {
    const key = endpointKey(from)
    if (channel === session.peer && key === session.remoteKey) return null
    const member = this.find(session.id, channel, key)
    if (member !== undefined) {
      if (op !== null && !member.scope.has(op)) throw new JoinTokenError('scope', `the join token of ${key} does not allow '${op}' (scope: ${[...member.scope].join(', ') || 'none'})`, { sessionId: session.id, op })
      return member
    }
    throw new SessionNotFoundError(session.id)
  }

  find(sessionId: string, channel: PeerChannel, key: string): SessionMember | undefined {
    return this.#bySession.get(sessionId)?.find((m) => m.channel === channel && m.key === key)
  }

  of(sessionId: string): readonly SessionMember[] {
    return this.#bySession.get(sessionId) ?? []
  }

  remove(sessionId: string, member: SessionMember): void {
    const list = this.#bySession.get(sessionId)?.filter((m) => m !== member) ?? []
    if (list.length === 0) this.#bySession.delete(sessionId)
    else this.#bySession.set(sessionId, list)
  }

  drop(sessionId: string): void {
    this.#bySession.delete(sessionId)
  }

  own(qp: QueuePair, member: SessionMember): void {
    this.#owner.set(qp, member)
  }

  ownerOf(qp: QueuePair): SessionMember | undefined {
    return this.#owner.get(qp)
  }

  /** The distinct channels of a session's members, without `except`. */
  channels(sessionId: string, except: PeerChannel | null = null): PeerChannel[] {
    const set = new Set<PeerChannel>()
    for (const m of this.of(sessionId)) if (m.channel !== except && !m.channel.closed) set.add(m.channel)
    return [...set]
  }
}

/** The claims of a join token, or ERR_SESSION_NOT_FOUND when it is malformed or its MAC fails (as for an unknown session). */
function verifiedOrUnknown(verify: () => JoinClaims, sessionId: string): JoinClaims {
  try {
    return verify()
  } catch (err) {
    const reason = isRdmaError(err, 'ERR_JOIN_TOKEN') ? err.details.reason : undefined
    if (reason === 'malformed' || reason === 'forged') throw new SessionNotFoundError(sessionId)
    throw err
  }
}
