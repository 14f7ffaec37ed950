/**
 * Who besides the session's own channel may act on a session: joiners that
 * presented a join token (another connection, or another process on the
 * session's remote host). Each member has its endpoint, its channel, its scope,
 * a QP budget and its own QP secret; the QPs it added are its own.
 */
import type { JoinScope } from '../control/join-token.js'
import type { QueuePair } from '../queue-pair.js'
import type { PeerChannel } from './peer-channel.js'
import { endpointKey, type EndpointRecord } from './records.js'

export interface SessionMember {
  readonly from: EndpointRecord
  readonly key: string
  readonly channel: PeerChannel
  /** Keys this member's QPs (joinQpSecret of its token). */
  readonly secret: Uint8Array
  readonly scope: ReadonlySet<JoinScope>
  readonly maxQps: number
  added: number
}

export class SessionMembers {
  readonly #bySession = new Map<string, SessionMember[]>()
  readonly #owner = new WeakMap<QueuePair, SessionMember>()

  add(sessionId: string, init: Omit<SessionMember, 'key' | 'added'>): SessionMember {
    const member: SessionMember = { ...init, key: endpointKey(init.from), added: 0 }
    const list = (this.#bySession.get(sessionId) ?? []).filter((m) => !(m.channel === member.channel && m.key === member.key))
    list.push(member)
    this.#bySession.set(sessionId, list)
    return member
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
