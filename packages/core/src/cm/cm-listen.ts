/**
 * The listening side of rdma_cm through core: `ctx.listen({ cm: { port } })`. An rdma-session
 * peer's first connection opens a session (the REP gives it the session ID and a CM join token);
 * its further connections join that session after the session layer's join checks; a plain rdma_cm
 * peer (rping, perftest -R …) gets one lone QP. Malformed rdma-session private data is refused with
 * a REJ (reason 28, consumer defined) whose private data names the refusal; nothing a peer sends throws.
 * Events: 'session' (a peer opened a session), 'connection' (a plain peer's lone QP).
 */
import { randomBytes } from 'node:crypto'
import type { PathMtu } from '@rdma-session/provider-interface'
import type { CreateQpOptions } from '../context.js'
import type { CmConnectRequest, CmListenerHandle, CmRequestDecision } from '@rdma-session/provider-interface'
import { InvalidArgumentError } from '../errors.js'
import type { QueuePair } from '../queue-pair.js'
import { newSessionSecret } from '../session/keys.js'
import { normalizeParams, type SessionParams } from '../session/params.js'
import type { Session } from '../session/session.js'
import type { SessionManager } from '../session/session-manager.js'
import { TypedEventEmitter } from '../typed-events.js'
import { createCmJoinToken } from './cm-join-token.js'
import type { CoreConnectionManager } from './cm-connect.js'
import { trafficClassOf } from './cm-connect.js'
import { CmRefusal, decodeCmPrivateData, encodeCmPrivateData, type CmRefusalCode } from './cm-private-data.js'
import { refusalFor } from './cm-refusal.js'
import { CmSessionChannel, type CoreCmConnection } from './cm-session-channel.js'

export interface CmListenSpec {
  /** The rdma_cm port. */
  readonly port: number
  /** Half-open connections held at most (the provider's backlog; default 128). */
  readonly backlog?: number
  /** Serve rdma-session peers' sessions. Default true. */
  readonly sessions?: boolean
  /** Accept plain rdma_cm peers (no rdma-session private data) as lone QPs ('connection' events; refused while nothing listens to them). Default true. */
  readonly plain?: boolean
  /** QPs a session's peer may add after its first (the budget of the session's CM join token). Default 1024. */
  readonly maxQpsPerSession?: number
  /** Decides on a plain peer's request (default: accept), as rdma_cm's listener would; may answer REP private data. */
  readonly onRequest?: (request: CmConnectRequest) => CmRequestDecision<QueuePair> | Promise<CmRequestDecision<QueuePair>>
  /** Plain peers' QPs: options for ctx.createQp, and a hook on the QP in INIT before the REP (post receives here). */
  readonly qp?: CreateQpOptions
  readonly prepare?: (qp: QueuePair) => void
}

export interface CmListenOptions {
  readonly cm: CmListenSpec
}

export interface CmServerEvents {
  session: [session: Session]
  connection: [connection: CoreCmConnection]
}

/** Counters of the requests a CmServer refused, by refusal. */
export type CmServerStats = { -readonly [K in keyof typeof CmRefusal]: number }

type Pending =
  | { readonly kind: 'plain'; readonly at: number }
  | { readonly kind: 'open'; readonly at: number; readonly sessionId: string; readonly secret: Uint8Array; readonly params: SessionParams; readonly opened: () => void }
  | { readonly kind: 'join'; readonly at: number; readonly adopt: (qp: QueuePair) => void; readonly release: () => void; readonly channel: CmSessionChannel }

/** A request not established within this long is forgotten (its reservation released). */
const PENDING_MS = 120_000
/** How long a join waits for the connection that opens its session to be established (its RTU may come later than the join's REQ). */
const OPEN_WAIT_MS = 10_000

function pendingKey(remote: { address: string; port: number }, privateData: Uint8Array): string {
  return `${remote.address}|${remote.port}|${Buffer.from(privateData).toString('hex')}`
}

export class CmServer extends TypedEventEmitter<CmServerEvents> {
  readonly port: number
  readonly #sessions: SessionManager
  readonly #spec: CmListenSpec
  readonly #listener: CmListenerHandle<QueuePair>
  readonly #pending = new Map<string, Pending[]>()
  /** The same requests, oldest first, with their keys. */
  readonly #order = new Map<Pending, string>()
  readonly #maxPending: number
  /** Sessions whose opening connection is accepted but not yet established, by ID. */
  readonly #opening = new Map<string, Promise<void>>()
  readonly #refused: CmServerStats = { MALFORMED: 0, VERSION: 0, SESSION_NOT_FOUND: 0, TOKEN_EXPIRED: 0, TOKEN_EXHAUSTED: 0, REMOTE_MISMATCH: 0, NOT_ACCEPTED: 0 }
  #closed = false

  readonly #maxMtu: PathMtu

  constructor(sessions: SessionManager, cm: CoreConnectionManager, spec: CmListenSpec, maxMtu: PathMtu) {
    super()
    const maxQps = spec.maxQpsPerSession ?? 1024
    if (!Number.isInteger(maxQps) || maxQps < 0 || maxQps > 0xffff) throw new InvalidArgumentError(`maxQpsPerSession must be an integer from 0 to 65535, got ${String(maxQps)}`)
    this.#sessions = sessions
    this.#spec = spec
    this.#maxMtu = maxMtu
    this.#maxPending = 4 * (spec.backlog ?? 128)
    this.#listener = cm.listen({
      port: spec.port,
      ...(spec.backlog === undefined ? {} : { backlog: spec.backlog }),
      ...(spec.qp === undefined ? {} : { qp: spec.qp }),
      onRequest: (r) => this.#decide(r),
    })
    this.port = this.#listener.port
    void this.#acceptLoop()
  }

  /** Requests refused, by refusal code name. */
  get refused(): Readonly<CmServerStats> {
    return { ...this.#refused }
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Stops listening; sessions and connections made through it stay. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#listener.close()
    for (const p of this.#order.keys()) this.#forget(p)
    this.#pending.clear()
    this.#order.clear()
  }

  #forget(p: Pending): void {
    if (p.kind === 'join') p.release()
    if (p.kind === 'open') p.opened()
  }

  /** Waits (bounded) for the opening connection of a session that is not established yet. */
  async #openingOf(sessionId: string): Promise<void> {
    const wait = this.#opening.get(sessionId)
    if (wait === undefined) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([wait, new Promise((r) => (timer = setTimeout(r, OPEN_WAIT_MS)))])
    clearTimeout(timer)
  }

  #refuse(code: CmRefusalCode | Uint8Array): CmRequestDecision<QueuePair> {
    const privateData = code instanceof Uint8Array ? code : encodeCmPrivateData({ kind: 'refuse', code })
    const d = decodeCmPrivateData(privateData)
    if ('message' in d && d.message.kind === 'refuse') {
      const name = (Object.keys(CmRefusal) as (keyof typeof CmRefusal)[]).find((k) => CmRefusal[k] === (d.message as { code: number }).code)!
      this.#refused[name]++
    }
    return { reject: true, privateData }
  }

  /**
   * Keeps an accepted request until its connection is established. Requests whose connection never
   * comes (the provider evicted or timed them out) go when they are PENDING_MS old or, oldest first,
   * when more than #maxPending are kept: a flood of REQs cannot grow this without bound.
   */
  #remember(r: CmConnectRequest, p: Pending): void {
    for (const [old, key] of this.#order) {
      if (p.at - old.at < PENDING_MS && this.#order.size < this.#maxPending) break
      this.#take(key, old)
      this.#forget(old)
    }
    const key = pendingKey(r.remote, r.privateData)
    this.#pending.set(key, [...(this.#pending.get(key) ?? []), p])
    this.#order.set(p, key)
  }

  /** Removes `p` (default: the oldest under `key`) from the table and returns it. */
  #take(key: string, p?: Pending): Pending | undefined {
    const list = this.#pending.get(key)
    if (list === undefined) return undefined
    const i = p === undefined ? 0 : list.indexOf(p)
    const [taken] = i < 0 ? [] : list.splice(i, 1)
    if (list.length === 0) this.#pending.delete(key)
    if (taken !== undefined) this.#order.delete(taken)
    return taken
  }

  async #decide(r: CmConnectRequest): Promise<CmRequestDecision<QueuePair>> {
    if (this.#closed) return this.#refuse(CmRefusal.NOT_ACCEPTED)
    const d = decodeCmPrivateData(r.privateData)
    const at = performance.now()
    if (d.plain) {
      // Nobody to hand a lone QP to: refused rather than leaked.
      if (this.#spec.plain === false || this.listenerCount('connection') === 0) return this.#refuse(CmRefusal.NOT_ACCEPTED)
      const answer = (await this.#spec.onRequest?.(r)) ?? undefined
      if (answer !== undefined && answer.reject === true) return answer
      this.#remember(r, { kind: 'plain', at })
      return this.#spec.prepare === undefined ? answer : { ...answer, prepare: this.#spec.prepare }
    }
    if (!('message' in d)) return this.#refuse(d.refusal)
    if (this.#spec.sessions === false) return this.#refuse(CmRefusal.NOT_ACCEPTED)
    const m = d.message
    if (m.kind === 'open') {
      const sessionId = randomBytes(16).toString('hex')
      const secret = newSessionSecret()
      const params = normalizeParams({ encryption: 'none', encapsulation: { mtu: Math.min(m.mtu, this.#maxMtu) as PathMtu, dscp: m.trafficClass >> 2, ecn: m.trafficClass & 3 } })
      const token = createCmJoinToken(secret, sessionId, { maxQps: this.#spec.maxQpsPerSession ?? 1024 })
      let opened!: () => void
      this.#opening.set(sessionId, new Promise<void>((resolve) => (opened = resolve)))
      this.#remember(r, { kind: 'open', at, sessionId, secret, params, opened: () => {
        this.#opening.delete(sessionId)
        opened()
      } })
      return { privateData: encodeCmPrivateData({ kind: 'accept', sessionId, token }), qp: { defaultTrafficClass: m.trafficClass } }
    }
    if (m.kind === 'join') {
      let admitted: ReturnType<SessionManager['admitConnectedQp']>
      await this.#openingOf(m.sessionId)
      try {
        admitted = this.#sessions.admitConnectedQp(m.sessionId, m.token, { address: r.remote.address, port: 0 })
      } catch (err) {
        return this.#refuse(refusalFor(err))
      }
      const channel = admitted.session.peer
      if (!(channel instanceof CmSessionChannel) || admitted.session.params.encryption.suite !== 'none') {
        admitted.release()
        return this.#refuse(CmRefusal.NOT_ACCEPTED)
      }
      this.#remember(r, { kind: 'join', at, adopt: admitted.adopt, release: admitted.release, channel })
      return { qp: { defaultTrafficClass: trafficClassOf(admitted.session.params) } }
    }
    // An accept or refuse has no place in a REQ.
    return this.#refuse(CmRefusal.MALFORMED)
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closed) {
      const conn = await this.#listener.accept()
      this.#established(conn)
    }
  }

  #established(conn: CoreCmConnection): void {
    const p = this.#take(pendingKey(conn.remote, conn.privateData))
    const drop = (): void => {
      void conn.disconnect().catch(() => {})
      void conn.qp?.close()
    }
    if (p === undefined || conn.qp === null) return drop()
    if (p.kind === 'plain') {
      this.emit('connection', conn)
      return
    }
    if (p.kind === 'join') {
      try {
        p.adopt(conn.qp)
      } catch {
        p.release()
        return drop()
      }
      p.channel.track(conn, false)
      return
    }
    const channel = new CmSessionChannel(this.#sessions, null)
    let session: Session
    try {
      session = this.#sessions.registerConnected({ id: p.sessionId, remote: conn.remote, params: p.params, initiator: false, peer: channel, secret: p.secret, qps: [conn.qp] })
    } catch {
      p.opened()
      return drop()
    }
    channel.bind(session)
    channel.track(conn, true)
    p.opened()
    this.emit('session', session)
  }
}
