/**
 * The session table of one context: creates sessions with a peer, answers the
 * peer's requests, finds sessions by ID or remote, and adds/removes QPs by ID.
 * Events: 'session' (a peer opened a session with us), 'session-closed'.
 */
import { TypedEventEmitter } from '../typed-events.js'
import { randomBytes } from 'node:crypto'
import type { PathMtu } from '@rdma-session/provider-interface'
import { EncryptionUnsupportedError, InvalidArgumentError, JoinTokenError, PeerError, QpNotFoundError, RemoteMismatchError, SessionClosedError, SessionNotFoundError } from '../errors.js'
import { createJoinToken, splitJoinToken, type JoinScope, type JoinTokenOptions } from '../control/join-token.js'
import type { RemoteRegion } from '../memory-region.js'
import type { QueuePair } from '../queue-pair.js'
import type { Context } from '../context.js'
import { newSessionSecret } from './keys.js'
import { normalizeParams, withMtu, withoutEncryption, type SessionParams, type SessionParamsSpec } from './params.js'
import { createInProcessLink, notice, type PeerChannel } from './peer-channel.js'
import { connectQp, initQp, offerOf, qpEncryption, type KeyContext } from './qp-connector.js'
import { endpointKey, type AddQpsRequest, type EndpointRecord, type JoinSessionRequest, type OpenSessionRequest, type PeerReply, type PeerRequest, type QpAnswerRecord, type QpOfferRecord, type QpSpec } from './records.js'
import { ExposedRegions } from './exposed-regions.js'
import { repairFailedQp, type RepairHost } from './qp-repair.js'
import { SessionMembers, type SessionMember } from './session-members.js'
import { QuotaCharges } from './quota-charges.js'
import { Session, type SessionOwner } from './session.js'

export interface CreateSessionOptions {
  /** The peer: a channel to its session manager (control plane), or another Context in this process. */
  readonly peer: PeerChannel | Context
  readonly params?: SessionParamsSpec
  /** The first QPs, created in the same round trip. Default: one QP with default QoS. */
  readonly qps?: readonly QpSpec[]
  /**
   * Regions to expose to the peer in this session, by name (default: those set with
   * sessions.expose()). As with expose(), a sub-range gets a key of its own, released when the session ends.
   */
  readonly expose?: Readonly<Record<string, RemoteRegion>>
}

export type RemoteSpec = EndpointRecord | string

/** Most QPs one request may create, so one message cannot exhaust the provider. */
export const MAX_QPS_PER_REQUEST = 4096

const SESSION_ID = /^[0-9a-f]{32}$/

function remoteKeyOf(remote: RemoteSpec): string {
  return typeof remote === 'string' ? remote : endpointKey(remote)
}

function checkSpecs(specs: readonly unknown[]): void {
  if (!Array.isArray(specs) || specs.length === 0) throw new InvalidArgumentError('give at least one QP spec')
  if (specs.length > MAX_QPS_PER_REQUEST) throw new InvalidArgumentError(`at most ${MAX_QPS_PER_REQUEST} QPs per request, got ${specs.length}`)
}

/** `ctx.sessions` events: a session opened by a peer (or joined), and any session of this context closed. */
export interface SessionManagerEvents {
  session: [session: Session]
  'session-closed': [session: Session]
}

export class SessionManager extends TypedEventEmitter<SessionManagerEvents> implements SessionOwner {
  readonly #ctx: Context
  readonly #table = new Map<string, Session>()
  readonly #secrets = new Map<string, Uint8Array>()
  readonly #exposed: ExposedRegions
  readonly #links = new WeakMap<Context, PeerChannel>()
  /** Joiners of our sessions (other connections/processes with a join token). */
  readonly #members = new SessionMembers()
  /** Regions we exposed to each session's peer (joiners get the same). */
  readonly #exposedTo = new Map<string, Readonly<Record<string, RemoteRegion>>>()
  /** Sessions this context joined with a token (their secret is the token's QP secret). */
  readonly #joined = new Set<string>()
  /** Sessions and QPs peers made us create, by the quota account they are charged to. */
  readonly #charges = new QuotaCharges()
  /** The spec each QP of ours was created with (a failed QP's replacement gets the same). */
  readonly #specs = new WeakMap<QueuePair, QpSpec>()
  readonly #repairHost: RepairHost = {
    removeQp: (session, qp, notifyPeer) => this.removeQp(session, qp, notifyPeer),
    tellPeer: async (session, qp, reason) => {
      await this.#askRemoveQp(session, qp, reason)
    },
    addQpsTo: (session, specs) => this.addQpsTo(session, specs),
    replacementSpec: (qp) => (this.#members.ownerOf(qp) === undefined ? this.#specs.get(qp) : undefined),
  }

  constructor(ctx: Context) {
    super()
    this.#ctx = ctx
    this.#exposed = new ExposedRegions((rkey) => ctx.regionByRkey(rkey))
  }

  /** Answers session requests that arrive on `channel` (the control plane calls this per connection). */
  serve(channel: PeerChannel): void {
    channel.setHandler((request, from) => this.#handle(request, from))
    channel.onClosed?.((reason) => void this.#channelGone(channel, reason))
  }

  /**
   * Exposes a region (mr.region(offset, length)) to peers of sessions created from now on.
   * A sub-range of a memory region is exposed under a registration of its own, so the key the
   * peer gets reaches that range only (an access past it fails with REM_ACCESS_ERR); exposing a
   * whole region hands out its own key. Exposing a name again withdraws the previous exposure.
   * Throws ERR_INVALID_ARGUMENT for a record that is not a region of this context,
   * ERR_OUT_OF_BOUNDS for a range outside it.
   */
  expose(name: string, region: RemoteRegion): void {
    this.#exposed.set(name, region)
  }

  /** Withdraws an exposure; true if there was one. A sub-range key is deregistered: peers that hold it lose access. */
  unexpose(name: string): boolean {
    return this.#exposed.delete(name)
  }

  /** The ID of the oldest established session to `remote`, or undefined. */
  query(filter: { remote: RemoteSpec }): string | undefined {
    return this.list(filter)[0]
  }

  /** IDs of established sessions, optionally only those to `remote`. */
  list(filter: { remote?: RemoteSpec } = {}): string[] {
    const key = filter.remote === undefined ? undefined : remoteKeyOf(filter.remote)
    const ids: string[] = []
    for (const s of this.#table.values()) if (key === undefined || s.remoteKey === key) ids.push(s.id)
    return ids
  }

  /** The session with this ID; throws ERR_SESSION_NOT_FOUND. */
  get(sessionId: string): Session {
    const s = this.#table.get(sessionId)
    if (s === undefined) throw new SessionNotFoundError(String(sessionId))
    return s
  }

  /** Creates a session and its first QPs in one round trip with the peer. */
  async create(options: CreateSessionOptions): Promise<Session> {
    const channel = this.#channelTo(options.peer)
    const specs = options.qps ?? [{}]
    checkSpecs(specs)
    let params = normalizeParams(options.params)
    const caps = this.#ctx.capabilities
    if (params.encryption.suite !== 'none' && !caps.encryption) {
      if (params.encryption.required) throw new EncryptionUnsupportedError(this.#ctx.provider.name, params.encryption.suite)
      params = withoutEncryption(params)
    }
    const sessionId = randomBytes(16).toString('hex')
    // Over the control plane both sides derive the secret (the channel gives it once the peer has answered); the in-process link carries it.
    const derives = typeof channel.sessionSecret === 'function'
    let secret = derives || params.encryption.suite === 'none' ? null : newSessionSecret()
    const qps = this.#createQps(specs, params)
    try {
      const request: OpenSessionRequest = {
        type: 'open-session', sessionId, from: this.#ctx.endpoint, params, maxMtu: caps.maxMtu,
        ...(secret === null ? {} : { secret: Buffer.from(secret).toString('base64') }),
        qps: qps.map((qp, i) => offerOf(qp, specs[i])),
        regions: options.expose === undefined ? this.#exposed.records() : this.#exposed.forSession(sessionId, options.expose),
      }
      const reply = await channel.request(request)
      if (reply.type !== 'open-session' || reply.qps.length !== qps.length) throw new PeerError('the peer answered open-session with a malformed reply')
      // Our QPs send to the endpoint the peer declares: it must be one its connection proves.
      channel.checkEndpoint?.(reply.from)
      if (derives) secret = channel.sessionSecret!(sessionId)
      if (reply.encryption === 'none' && params.encryption.suite !== 'none') {
        if (params.encryption.required) throw new EncryptionUnsupportedError('peer', params.encryption.suite)
        params = withoutEncryption(params)
      }
      params = withMtu(params, reply.mtu)
      const keys = params.encryption.suite === 'none' || secret === null ? null : { secret, sessionId, epoch: 0 }
      qps.forEach((qp, i) => connectQp(qp, reply.from, reply.qps[i]!, params, keys))
      const session = new Session({ id: sessionId, remote: reply.from, params, initiator: true, peer: channel, owner: this, remoteRegions: reply.regions })
      this.#exposedTo.set(sessionId, request.regions)
      this.#register(session, secret, qps)
      return session
    } catch (err) {
      this.#exposed.endSession(sessionId)
      await Promise.all(qps.map((qp) => qp.close()))
      throw err
    }
  }

  /** Adds QPs to an established session by its ID; `remote`, when given, must be the session's. */
  async addQps(sessionId: string, specs: readonly QpSpec[], options: { remote?: RemoteSpec } = {}): Promise<QueuePair[]> {
    const session = this.#open(sessionId)
    if (options.remote !== undefined && remoteKeyOf(options.remote) !== session.remoteKey) {
      throw new RemoteMismatchError(sessionId, session.remoteKey, remoteKeyOf(options.remote))
    }
    return this.addQpsTo(session, specs)
  }

  /**
   * Takes part in a session that another connection or process holds, with a
   * join token its holder made (session.createJoinToken()). The session appears
   * in this table with only the QPs added from here.
   */
  async join(peer: PeerChannel | Context, token: string): Promise<Session> {
    const channel = this.#channelTo(peer)
    const { presented, qpSecret, claims } = splitJoinToken(token)
    if (this.#table.has(claims.sid)) throw new InvalidArgumentError(`session '${claims.sid}' is already in this context's table`)
    const reply = await channel.request({ type: 'join-session', sessionId: claims.sid, from: this.#ctx.endpoint, token: presented })
    if (reply.type !== 'join-session') throw new PeerError('the peer answered join-session with a malformed reply')
    channel.checkEndpoint?.(reply.from)
    const params = normalizeParams({ encryption: reply.params.encryption.suite === 'none' ? 'none' : { suite: reply.params.encryption.suite, required: reply.params.encryption.required }, encapsulation: reply.params.encapsulation })
    if (params.encryption.suite !== 'none' && !this.#ctx.capabilities.encryption) throw new EncryptionUnsupportedError(this.#ctx.provider.name, params.encryption.suite)
    if (this.#table.has(claims.sid)) throw new InvalidArgumentError(`session '${claims.sid}' is already in this context's table`)
    const session = new Session({ id: claims.sid, remote: reply.from, params, initiator: false, peer: channel, owner: this, remoteRegions: reply.regions })
    session.epoch = reply.epoch
    this.#joined.add(session.id)
    this.#register(session, qpSecret, [])
    return session
  }

  /** @internal SessionOwner */
  createJoinToken(session: Session, options: JoinTokenOptions = {}): string {
    session.assertOpen()
    const secret = this.#secrets.get(session.id)
    if (secret === undefined) throw new InvalidArgumentError(`session '${session.id}' has no secret to bind a join token to: create it over the control plane (ctx.connect) or encrypted`)
    if (this.#joined.has(session.id)) throw new InvalidArgumentError('a joined session cannot issue join tokens; ask the session holder')
    return createJoinToken(secret, session.id, options)
  }

  /** @internal SessionOwner */
  async addQpsTo(session: Session, specs: readonly QpSpec[]): Promise<QueuePair[]> {
    checkSpecs(specs)
    if (session.peer.connectQps !== undefined) return this.#adoptConnected(session, await session.peer.connectQps(session, specs))
    const qps = this.#createQps(specs, session.params)
    try {
      const request: AddQpsRequest = { type: 'add-qps', sessionId: session.id, from: this.#ctx.endpoint, qps: qps.map((qp, i) => offerOf(qp, specs[i])) }
      const reply = await session.peer.request(request)
      if (reply.type !== 'add-qps' || reply.qps.length !== qps.length) throw new PeerError('the peer answered add-qps with a malformed reply')
      session.assertOpen()
      const keys = this.#keys(session)
      qps.forEach((qp, i) => connectQp(qp, session.remote, reply.qps[i]!, session.params, keys))
      for (const qp of qps) session.adopt(qp)
      return qps
    } catch (err) {
      await Promise.all(qps.map((qp) => qp.close()))
      throw err
    }
  }

  async #adoptConnected(session: Session, qps: QueuePair[]): Promise<QueuePair[]> {
    if (session.closed) {
      await Promise.all(qps.map((qp) => qp.close()))
      throw new SessionClosedError(session.id)
    }
    for (const qp of qps) session.adopt(qp)
    return qps
  }

  /**
   * @internal A session whose QPs were connected by the channel's transport (rdma_cm): registered
   * as the ws control plane registers one; `secret` (the listener's) makes and checks its CM join tokens.
   */
  registerConnected(init: { id: string; remote: EndpointRecord; params: SessionParams; initiator: boolean; peer: PeerChannel; secret: Uint8Array | null; qps: QueuePair[] }): Session {
    if (this.#table.has(init.id)) throw new InvalidArgumentError(`session '${init.id}' exists already`)
    const session = new Session({ id: init.id, remote: init.remote, params: init.params, initiator: init.initiator, peer: init.peer, owner: this, remoteRegions: {} })
    this.#exposedTo.set(session.id, {})
    this.#register(session, init.secret, init.qps)
    if (!init.initiator) this.emit('session', session)
    return session
  }

  /**
   * @internal A QP asks to join session `sessionId` over the channel's transport with a CM join
   * token (rdma_cm private data): the join checks of a ws join (token, single admission, the remote's
   * address), then one QP of the member's budget is reserved. `release` gives it back if the QP never
   * comes; `adopt` adds the connected QP to the session.
   */
  admitConnectedQp(sessionId: string, token: Uint8Array, from: EndpointRecord): { session: Session; adopt(qp: QueuePair): void; release(): void } {
    const session = this.#open(String(sessionId))
    const secret = this.#joined.has(session.id) ? undefined : this.#secrets.get(session.id)
    const member = this.#members.admitCm(session, secret, token, from, session.peer)
    if (member.added + 1 > member.maxQps) throw new JoinTokenError('exhausted', `the join token allows ${member.maxQps} QPs; ${member.added} were added already`, { sessionId: session.id })
    member.added++
    let settled = false
    return {
      session,
      adopt: (qp) => {
        settled = true
        session.assertOpen()
        this.#members.own(qp, member)
        session.adopt(qp)
      },
      release: () => {
        if (!settled) member.added--
        settled = true
      },
    }
  }

  /** @internal SessionOwner */
  async removeQp(session: Session, qp: QueuePair, notifyPeer: boolean): Promise<void> {
    if (!session.release(qp)) return
    await qp.close()
    this.#charges.releaseQp(qp)
    if (notifyPeer && qp.remoteQpn !== null && !session.closed) await notice(this.#askRemoveQp(session, qp))
  }

  /** Asks the peer to remove its end of `qp` (`failure`: ours failed, and why). */
  #askRemoveQp(session: Session, qp: QueuePair, failure?: string): Promise<PeerReply> {
    const channel = this.#members.ownerOf(qp)?.channel ?? session.peer
    return channel.request({ type: 'remove-qp', sessionId: session.id, from: this.#ctx.endpoint, qpn: qp.remoteQpn!, ...(failure === undefined ? {} : { failure }) })
  }

  /** @internal SessionOwner: see QpFailurePolicy and repairFailedQp (resolves when the repair is done). */
  qpFailed(session: Session, qp: QueuePair, reason: string, detectedBy: 'local' | 'peer'): Promise<void> {
    return repairFailedQp(this.#repairHost, session, qp, reason, detectedBy)
  }

  /** @internal SessionOwner */
  async closeSession(session: Session, reason: string, notifyPeer: boolean, except: PeerChannel | null = null): Promise<void> {
    if (!session.markClosed(reason)) return
    this.#table.delete(session.id)
    this.#secrets.delete(session.id)
    this.#exposedTo.delete(session.id)
    this.#exposed.endSession(session.id)
    this.#joined.delete(session.id)
    const members = this.#members.channels(session.id, except)
    this.#members.drop(session.id)
    await Promise.all(session.qps.map(async (qp) => {
      session.release(qp)
      await qp.close()
      this.#charges.releaseQp(qp)
    }))
    this.#charges.releaseSession(session.id)
    const tell = new Set(members.filter((c) => c !== session.peer))
    if (notifyPeer && !session.peer.closed) tell.add(session.peer)
    await Promise.all([...tell].map((c) => notice(c.request({ type: 'close-session', sessionId: session.id, from: this.#ctx.endpoint, reason }))))
    session.emitClosed(reason)
    this.emit('session-closed', session)
  }

  /** @internal SessionOwner */
  async rekey(session: Session): Promise<void> {
    if (this.#keys(session) === null) throw new InvalidArgumentError(`session '${session.id}' is not encrypted; there is no key to rotate`)
    const epoch = session.epoch + 1
    const request = { type: 'rekey' as const, sessionId: session.id, from: this.#ctx.endpoint, epoch }
    await session.peer.request(request)
    // Joiners on other connections move too (a joiner that cannot be told loses its QPs to retry errors).
    await Promise.all(this.#members.channels(session.id, session.peer).map((c) => c.request(request).catch(() => undefined)))
    this.#installEpoch(session, epoch)
  }

  /** Closes every session (the context's close calls this). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#table.values()].map((s) => this.closeSession(s, 'context closed', true)))
  }

  // ---- internals

  #open(sessionId: string): Session {
    const s = this.get(sessionId)
    if (s.closed) throw new SessionClosedError(sessionId)
    return s
  }

  #channelTo(peer: PeerChannel | Context): PeerChannel {
    if (!('sessions' in peer)) return peer
    if (peer === this.#ctx) throw new InvalidArgumentError('a context cannot open a session with itself; use a second context')
    let channel = this.#links.get(peer)
    if (channel === undefined || channel.closed) {
      const [toPeer, toUs] = createInProcessLink()
      this.serve(toPeer)
      peer.sessions.serve(toUs)
      peer.sessions.#links.set(this.#ctx, toUs)
      this.#links.set(peer, toPeer)
      channel = toPeer
    }
    return channel
  }

  #createQps(specs: readonly QpSpec[], params: SessionParams): QueuePair[] {
    const made: QueuePair[] = []
    const trafficClass = (params.encapsulation.dscp << 2) | params.encapsulation.ecn
    try {
      for (const spec of specs) {
        const qp = this.#ctx.createQp({ caps: spec?.caps ?? {}, qos: spec?.qos ?? {}, defaultTrafficClass: trafficClass })
        made.push(qp)
        this.#specs.set(qp, spec ?? {})
        initQp(qp)
      }
      return made
    } catch (err) {
      for (const qp of made) void qp.close()
      throw err
    }
  }

  #keys(session: Session, secretOverride?: Uint8Array): KeyContext | null {
    if (session.params.encryption.suite === 'none') return null
    const secret = secretOverride ?? this.#secrets.get(session.id)
    return secret === undefined ? null : { secret, sessionId: session.id, epoch: session.epoch }
  }

  /** A QP's keys: a joiner's QPs are keyed with its token's QP secret. */
  #qpKeys(session: Session, qp: QueuePair): KeyContext | null {
    return this.#keys(session, this.#members.ownerOf(qp)?.secret)
  }

  #register(session: Session, secret: Uint8Array | null, qps: QueuePair[]): void {
    this.#table.set(session.id, session)
    if (secret !== null) this.#secrets.set(session.id, secret)
    for (const qp of qps) session.adopt(qp)
  }

  #installEpoch(session: Session, epoch: number): void {
    session.epoch = epoch
    for (const qp of session.qps) {
      const encryption = qpEncryption(this.#qpKeys(session, qp), qp.qpn, qp.remoteQpn!)
      if (encryption !== undefined) qp.modify({ state: 'RTS', encryption })
    }
  }

  // ---- the peer's requests

  async #handle(request: PeerRequest, channel: PeerChannel): Promise<PeerReply> {
    if (request === null || typeof request !== 'object') throw new PeerError('malformed request')
    // The endpoint a request declares is where QPs made or found for it send: it must be bound to the channel.
    channel.checkEndpoint?.(request.from)
    switch (request.type) {
      case 'open-session':
        return this.#acceptOpen(request, channel)
      case 'add-qps':
        return this.#acceptAddQps(request, channel)
      case 'join-session':
        return this.#acceptJoin(request, channel)
      case 'remove-qp': {
        const { session, member } = this.#fromPeer(request.sessionId, request.from, channel, 'remove-qp')
        const qp = session.qp(request.qpn)
        // Each side of a session removes only its own QPs: a joiner those it added, the session's channel the others.
        if ((this.#members.ownerOf(qp) ?? null) !== member) throw new QpNotFoundError(request.qpn, session.id)
        if (typeof request.failure === 'string') await this.qpFailed(session, qp, `peer: ${request.failure.slice(0, 200)}`, 'peer')
        else await this.removeQp(session, qp, false)
        return { type: 'ack' }
      }
      case 'close-session': {
        const { session, member } = this.#fromPeer(request.sessionId, request.from, channel, null)
        const reason = `closed by peer: ${String(request.reason).slice(0, 200)}`
        if (member !== null) await this.#dropMember(session, member)
        else await this.closeSession(session, reason, false, channel)
        return { type: 'ack' }
      }
      case 'rekey': {
        const { session } = this.#fromPeer(request.sessionId, request.from, channel, 'rekey')
        if (this.#keys(session) === null) throw new InvalidArgumentError('session is not encrypted')
        if (request.epoch !== session.epoch + 1) throw new InvalidArgumentError(`rekey to epoch ${String(request.epoch)} but the session is at epoch ${session.epoch}`)
        this.#installEpoch(session, request.epoch)
        const notice = { type: 'rekey' as const, sessionId: session.id, from: this.#ctx.endpoint, epoch: request.epoch }
        const others = this.#members.channels(session.id, channel)
        if (session.peer !== channel && !session.peer.closed) others.push(session.peer)
        await Promise.all(others.map((c) => c.request(notice).catch(() => undefined)))
        return { type: 'ack' }
      }
      default:
        throw new PeerError(`unknown request type '${String((request as { type?: unknown }).type)}'`)
    }
  }

  /**
   * The session a peer request names, checked: it exists, is open, and the
   * requester is its remote on the session's own channel, or a member that
   * joined with a token whose scope allows `op`.
   */
  #fromPeer(sessionId: string, from: EndpointRecord, channel: PeerChannel, op: JoinScope | null): { session: Session; member: SessionMember | null } {
    const session = this.#open(String(sessionId))
    return { session, member: this.#members.authorize(session, from, channel, op) }
  }

  /** A joiner asks to take part in one of our sessions. */
  async #acceptJoin(request: JoinSessionRequest, channel: PeerChannel): Promise<PeerReply> {
    const session = this.#open(String(request.sessionId))
    const secret = this.#joined.has(session.id) ? undefined : this.#secrets.get(session.id)
    this.#members.admit(session, secret, request, channel)
    return { type: 'join-session', from: this.#ctx.endpoint, params: session.params, epoch: session.epoch, regions: this.#exposedTo.get(session.id) ?? {} }
  }

  /** A member leaves: its QPs go, the session stays. */
  async #dropMember(session: Session, member: SessionMember): Promise<void> {
    this.#members.remove(session.id, member)
    await Promise.all(session.qps.filter((qp) => this.#members.ownerOf(qp) === member).map((qp) => this.removeQp(session, qp, false)))
  }

  /** A control channel closed for good: its sessions close, its joiners leave. */
  async #channelGone(channel: PeerChannel, reason: string): Promise<void> {
    for (const session of [...this.#table.values()]) {
      if (session.peer === channel) await this.closeSession(session, `control channel lost: ${reason}`, false, channel)
      else for (const m of this.#members.of(session.id)) if (m.channel === channel) await this.#dropMember(session, m)
    }
  }

  async #acceptOpen(request: OpenSessionRequest, channel: PeerChannel): Promise<PeerReply> {
    if (typeof request.sessionId !== 'string' || !SESSION_ID.test(request.sessionId)) throw new InvalidArgumentError('malformed session ID')
    if (this.#table.has(request.sessionId)) throw new InvalidArgumentError(`session '${request.sessionId}' exists already`)
    checkSpecs(request.qps)
    channel.admitQps?.(request.qps.length)
    const specs = request.qps.map((o) => o?.spec)
    const use = this.#charges.reserve(channel.quota, specs, true)
    let accepted: { reply: PeerReply; local: QueuePair[] }
    try {
      accepted = this.#openAccepted(request, channel)
    } catch (err) {
      this.#charges.rollback(channel.quota, use)
      throw err
    }
    this.#charges.adopt(channel.quota, accepted.local, specs, request.sessionId)
    const opened = this.#table.get(request.sessionId)
    if (opened !== undefined) this.emit('session', opened)
    return accepted.reply
  }

  #openAccepted(request: OpenSessionRequest, channel: PeerChannel): { reply: PeerReply; local: QueuePair[] } {
    const spec = request.params as SessionParams
    let params = normalizeParams({ encryption: (spec?.encryption?.suite === 'none' ? 'none' : spec?.encryption) as SessionParamsSpec['encryption'], encapsulation: spec?.encapsulation })
    const caps = this.#ctx.capabilities
    if (params.encryption.suite !== 'none' && !caps.encryption) {
      if (params.encryption.required) throw new EncryptionUnsupportedError(this.#ctx.provider.name, params.encryption.suite)
      params = withoutEncryption(params)
    }
    let secret: Uint8Array | null = channel.sessionSecret?.(request.sessionId) ?? null
    if (secret === null && params.encryption.suite !== 'none') {
      secret = typeof request.secret === 'string' ? new Uint8Array(Buffer.from(request.secret, 'base64')) : new Uint8Array(0)
      if (secret.length !== 32) throw new InvalidArgumentError('an encrypted session needs a 32-byte session secret')
    }
    const mtu = Math.min(params.encapsulation.mtu, Number(request.maxMtu) || 256, caps.maxMtu) as PathMtu
    params = withMtu(params, mtu)
    const keys = secret === null || params.encryption.suite === 'none' ? null : { secret, sessionId: request.sessionId, epoch: 0 }
    const qps = this.#answerQps(request.qps, params, request.from, keys)
    const session = new Session({ id: request.sessionId, remote: request.from, params, initiator: false, peer: channel, owner: this, remoteRegions: request.regions ?? {} })
    const regions = this.#exposed.records()
    this.#exposedTo.set(session.id, regions)
    this.#register(session, secret, qps.local)
    return { reply: { type: 'open-session', from: this.#ctx.endpoint, mtu, encryption: params.encryption.suite === 'none' ? 'none' : 'aes-256-gcm', qps: qps.answers, regions }, local: qps.local }
  }

  async #acceptAddQps(request: AddQpsRequest, channel: PeerChannel): Promise<PeerReply> {
    const { session, member } = this.#fromPeer(request.sessionId, request.from, channel, 'add-qps')
    checkSpecs(request.qps)
    if (member !== null && member.added + request.qps.length > member.maxQps) {
      throw new JoinTokenError('exhausted', `the join token allows ${member.maxQps} QPs; ${member.added} were added already`, { sessionId: session.id })
    }
    channel.admitQps?.(request.qps.length)
    const specs = request.qps.map((o) => o?.spec)
    const use = this.#charges.reserve(channel.quota, specs, false)
    let qps: { local: QueuePair[]; answers: QpAnswerRecord[] }
    try {
      qps = this.#answerQps(request.qps, session.params, member?.from ?? session.remote, this.#keys(session, member?.secret))
    } catch (err) {
      this.#charges.rollback(channel.quota, use)
      throw err
    }
    this.#charges.adopt(channel.quota, qps.local, specs, null)
    for (const qp of qps.local) {
      if (member !== null) this.#members.own(qp, member)
      session.adopt(qp)
    }
    if (member !== null) member.added += qps.local.length
    return { type: 'add-qps', qps: qps.answers }
  }

  /** Creates and connects our end of each offered QP. */
  #answerQps(offers: readonly QpOfferRecord[], params: SessionParams, remote: EndpointRecord, keys: KeyContext | null): { local: QueuePair[]; answers: QpAnswerRecord[] } {
    const local = this.#createQps(offers.map((o) => o?.spec ?? {}), params)
    try {
      offers.forEach((o, i) => connectQp(local[i]!, remote, { qpn: o.qpn, psn: o.psn }, params, keys))
    } catch (err) {
      for (const qp of local) void qp.close()
      throw err
    }
    return { local, answers: local.map((qp) => qp.endpoint()) }
  }
}
