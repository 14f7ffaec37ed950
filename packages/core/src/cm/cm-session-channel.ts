/**
 * The PeerChannel of a session over rdma_cm. There is no control connection: each QP is a CM
 * connection, so what the session layer would ask the peer becomes CM actions. A QP leaving the
 * session disconnects its connection (DREQ), and the peer's DREQ removes the QP; the session lives
 * as long as its first connection (the one that opened it). The connecting side adds QPs as further
 * CM connections carrying the session ID and its CM join token; the listening side cannot add QPs.
 */
import { InvalidArgumentError, UnsupportedError } from '../errors.js'
import type { CmConnectionHandle, CmEnding } from '@rdma-session/provider-interface'
import type { QueuePair } from '../queue-pair.js'
import type { PeerChannel } from '../session/peer-channel.js'
import type { PeerReply, PeerRequest, QpSpec } from '../session/records.js'
import type { Session } from '../session/session.js'
import type { SessionManager } from '../session/session-manager.js'

export type CoreCmConnection = CmConnectionHandle<QueuePair>

/** Connects one more QP of `session` (the connecting side's join connections). */
export type CmDial = (session: Session, spec: QpSpec) => Promise<CoreCmConnection>

export class CmSessionChannel implements PeerChannel {
  readonly #sessions: SessionManager
  readonly #dial: CmDial | null
  readonly #conns = new Map<QueuePair, CoreCmConnection>()
  #opener: CoreCmConnection | null = null
  #session: Session | null = null
  #closed = false

  constructor(sessions: SessionManager, dial: CmDial | null) {
    this.#sessions = sessions
    this.#dial = dial
  }

  /** Ties the channel to its session: QPs leaving it disconnect their connections. */
  bind(session: Session): void {
    this.#session = session
    session.on('qp-removed', (qp) => {
      const c = this.#conns.get(qp)
      if (c === undefined) return
      this.#conns.delete(qp)
      void c.disconnect().catch(() => {})
      if (c === this.#opener && !session.closed) void this.#sessions.closeSession(session, 'its first rdma_cm connection was removed', true)
    })
    session.once('closed', () => this.close())
  }

  /** A connection whose QP is (or is about to be) one of the session's. */
  track(conn: CoreCmConnection, opener: boolean): void {
    if (conn.qp === null) return
    if (this.#closed) {
      void conn.disconnect().catch(() => {})
      return
    }
    this.#conns.set(conn.qp, conn)
    if (opener) this.#opener = conn
    void conn.disconnected.then((ending) => this.#ended(conn, ending))
  }

  #ended(conn: CoreCmConnection, ending: CmEnding): void {
    const s = this.#session
    const qp = conn.qp
    if (ending.by === 'local' || s === null || s.closed || qp === null) return
    if (conn === this.#opener) void this.#sessions.closeSession(s, `the rdma_cm peer ended the session's first connection (${ending.by})`, false)
    else if (s.has(qp)) void this.#sessions.removeQp(s, qp, false)
  }

  async request(request: PeerRequest): Promise<PeerReply> {
    switch (request.type) {
      // The CM connections carry these: a DREQ for each QP that goes.
      case 'close-session':
      case 'remove-qp':
        return { type: 'ack' }
      case 'rekey':
        throw new InvalidArgumentError('sessions over rdma_cm are not encrypted; there is no key to rotate')
      default:
        throw new UnsupportedError(`'${request.type}' over rdma_cm (use the ws control plane)`, 'rdma-cm')
    }
  }

  setHandler(): void {
    // Nothing arrives as a request: the peer acts through CM connections.
  }

  get closed(): boolean {
    return this.#closed
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const c of this.#conns.values()) void c.disconnect().catch(() => {})
    this.#conns.clear()
  }

  async connectQps(session: Session, specs: readonly QpSpec[]): Promise<QueuePair[]> {
    if (this.#dial === null) throw new UnsupportedError('adding QPs from the listening side of an rdma_cm session (the connecting side adds them)', 'rdma-cm')
    const made: CoreCmConnection[] = []
    try {
      for (const spec of specs) {
        const c = await this.#dial(session, spec)
        made.push(c)
        this.track(c, false)
      }
    } catch (err) {
      await Promise.all(made.map(async (c) => {
        this.#conns.delete(c.qp!)
        await c.disconnect().catch(() => {})
        await c.qp!.close()
      }))
      throw err
    }
    return made.map((c) => c.qp!)
  }
}
