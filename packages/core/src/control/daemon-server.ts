/**
 * The session daemon (`rdma-session daemon`): owns the session table of this
 * host and the control connections to its peers, so several local processes
 * can find sessions by ID and add QPs to the same session. Clients connect on
 * a Unix socket (mode 0600) and authenticate with the daemon token. QPs live
 * in the client processes; the daemon relays their requests over the session's
 * authenticated channel, routes the peer's requests to the process that owns
 * each QP, and when a client dies, removes its QPs and tells the peer.
 */
import { TypedEventEmitter } from '../typed-events.js'
import { PeerError, SessionNotFoundError, UnsupportedError, JoinTokenError, InvalidArgumentError, QpNotFoundError } from '../errors.js'
import { endpointKey, type EndpointRecord, type OpenSessionReply, type PeerReply, type PeerRequest } from '../session/records.js'
import { normalizeClientAuth, normalizeServerAuth, type KeyMaterial } from './auth.js'
import { ControlChannel, type ChannelOptions } from './control-channel.js'
import type { ControlConnection, KeepaliveOptions } from './control-connection.js'
import { ControlServer, dialControl, type ServerAdmissionStats } from './control-server.js'
import type { AdmissionLimits } from './admission-pool.js'
import { daemonReplySchema, daemonRequestSchema, type DaemonReply, type DaemonRequest, type DaemonSessionInfo, type WireAuth } from './daemon-protocol.js'
import { CREATOR_SCOPE, DaemonGrants, JOINER_SCOPE, checkScopes, requireScope, type DaemonScope } from './daemon-roles.js'
import { createJoinToken, splitJoinToken, verifyJoinToken } from './join-token.js'
import { WsPeerChannel } from './ws-peer-channel.js'
import { checkDaemonSocket } from './private-path.js'

export const DAEMON_PSK_ID = 'daemon'

export class DaemonChannel extends ControlChannel<DaemonRequest, DaemonReply> {
  constructor(conn: ControlConnection, options: ChannelOptions & { redial?: (resume: { channelId: string; resumeKey: Buffer }) => Promise<ControlConnection> } = {}) {
    super({ ...options, result: conn.result, requestSchema: daemonRequestSchema as never, replySchema: daemonReplySchema }, conn)
  }
}

export interface SessionDaemonOptions {
  /** Unix socket to listen on (created with mode 0600). */
  readonly socketPath: string
  /** Clients must present this token (at least 32 bytes of key material; the CLI makes 32 random bytes, hex). */
  readonly token: KeyMaterial
  /** Keepalive of client and peer connections. */
  readonly keepalive?: KeepaliveOptions
  /** How long a dropped peer connection may take to come back. Default 30000 ms. */
  readonly reconnectGraceMs?: number
  /** The budget of client connections that have not finished the handshake (see listen({ admission })). A Unix socket's peers have no address, so only the total applies: when it is full, the oldest pending connection makes room. */
  readonly admission?: AdmissionLimits
  /** Most authenticated client connections. Default 256. */
  readonly maxConnections?: number
  /** The deadline of a client's handshake, from accept. Default 5000 ms. */
  readonly handshakeTimeoutMs?: number
}

interface Participant {
  readonly endpoint: EndpointRecord
  /** local QPN -> peer QPN */
  readonly qps: Map<number, number>
  /** What this process may do in the session (see daemon-roles). */
  scope: ReadonlySet<DaemonScope>
}

/** How long a join token the daemon mints is valid. */
const TOKEN_TTL_MS = 60_000

interface DaemonSession {
  readonly id: string
  readonly url: string
  readonly peer: WsPeerChannel
  readonly secret: Uint8Array
  readonly remote: EndpointRecord
  readonly local: EndpointRecord
  epoch: number
  readonly members: Map<DaemonChannel, Participant>
  /** The process that created the session (or was named creator); null once it left. */
  creator: DaemonChannel | null
  readonly grants: DaemonGrants
}

/** The daemon's events: a local process registered, a process went away (per session it was in), a session closed. */
export interface SessionDaemonEvents {
  client: [client: { id: number; pid: number; endpoint: EndpointRecord }]
  'client-gone': [client: { id: number | undefined; pid: number | undefined; sessionId: string; qps: number }]
  'session-closed': [session: { id: string; reason: string }]
}

export class SessionDaemon extends TypedEventEmitter<SessionDaemonEvents> {
  readonly #server: ControlServer<DaemonChannel>
  readonly #options: SessionDaemonOptions
  readonly #sessions = new Map<string, DaemonSession>()
  readonly #peers = new Map<string, Promise<WsPeerChannel>>()
  readonly #clients = new Map<DaemonChannel, { endpoint: EndpointRecord; pid: number; id: number }>()
  #nextClient = 1

  private constructor(server: ControlServer<DaemonChannel>, options: SessionDaemonOptions) {
    super()
    this.#server = server
    this.#options = options
  }

  static async start(options: SessionDaemonOptions): Promise<SessionDaemon> {
    if (typeof options?.socketPath !== 'string') throw new InvalidArgumentError('the daemon needs a socketPath')
    checkDaemonSocket(options.socketPath, false)
    const auth = normalizeServerAuth({ psk: options.token, pskId: DAEMON_PSK_ID })
    let daemon: SessionDaemon | null = null
    const server = await ControlServer.start<DaemonChannel>(
      { socketPath: options.socketPath, keepalive: options.keepalive, admission: options.admission, maxConnections: options.maxConnections, handshakeTimeoutMs: options.handshakeTimeoutMs },
      auth,
      'daemon',
      (conn) => new DaemonChannel(conn, { reconnectGraceMs: 0 }),
      (channel) => daemon!.#accept(channel),
    )
    daemon = new SessionDaemon(server, options)
    return daemon
  }

  get socketPath(): string {
    return this.#server.socketPath!
  }
  /** The admission of client connections: limits and counters. */
  get admission(): ServerAdmissionStats {
    return this.#server.admission
  }
  /** Connected client processes. */
  get clients(): number {
    return this.#clients.size
  }

  list(remote?: string): DaemonSessionInfo[] {
    const out: DaemonSessionInfo[] = []
    for (const s of this.#sessions.values()) {
      if (remote !== undefined && endpointKey(s.remote) !== remote) continue
      let qps = 0
      for (const m of s.members.values()) qps += m.qps.size
      out.push({ id: s.id, url: s.url, remote: s.remote, local: s.local, epoch: s.epoch, clients: s.members.size, qps })
    }
    return out
  }

  async close(): Promise<void> {
    for (const s of [...this.#sessions.values()]) await this.#closeSession(s, 'daemon stopped', true)
    for (const p of this.#peers.values()) void p.then((c) => c.close('daemon stopped'), () => undefined)
    this.#peers.clear()
    await this.#server.close()
  }

  // ---- clients

  #accept(channel: DaemonChannel): void {
    channel.setHandler((req: DaemonRequest) => this.#onClient(channel, req))
    channel.onClosed(() => void this.#clientGone(channel))
  }

  async #onClient(client: DaemonChannel, req: DaemonRequest): Promise<DaemonReply> {
    switch (req.op) {
      case 'register': {
        const known = this.#clients.get(client)
        if (known !== undefined) throw new InvalidArgumentError(`this connection registered already (client ${known.id}): one registration per connection`)
        for (const c of this.#clients.values()) {
          if (endpointKey(c.endpoint) === endpointKey(req.endpoint)) throw new InvalidArgumentError(`endpoint ${endpointKey(req.endpoint)} is registered by another process (client ${c.id})`)
        }
        const id = this.#nextClient++
        this.#clients.set(client, { endpoint: req.endpoint, pid: req.pid, id })
        this.emit('client', { id, pid: req.pid, endpoint: req.endpoint })
        return { op: 'registered', clientId: id }
      }
      case 'list':
        return { op: 'sessions', sessions: this.list(req.remote) }
      case 'open':
        return this.#open(client, req.url, req.auth, req.request)
      case 'token':
        return this.#token(client, this.#session(req.sessionId), req.scope ?? [])
      case 'set-creator': {
        const s = this.#session(req.sessionId)
        requireScope(this.#scopeOf(s, client), 'creator', s.id, 'naming another creator')
        const next = [...s.members].find(([c]) => this.#clients.get(c)?.id === req.clientId)
        if (next === undefined) throw new InvalidArgumentError(`client ${req.clientId} does not take part in session '${s.id}'`)
        // A handover: the old creator keeps only a joiner's rights.
        const old = s.creator === null ? undefined : s.members.get(s.creator)
        if (old !== undefined && s.creator !== next[0]) old.scope = new Set(JOINER_SCOPE)
        s.creator = next[0]
        next[1].scope = new Set(CREATOR_SCOPE)
        return { op: 'done' }
      }
      case 'relay':
        return { op: 'relayed', reply: await this.#relay(client, this.#session(req.sessionId), req.request) }
      default:
        throw new PeerError(`clients do not send '${req.op}'`)
    }
  }

  async #open(client: DaemonChannel, url: string, auth: WireAuth, request: PeerRequest): Promise<DaemonReply> {
    const me = this.#registered(client)
    if (request.type !== 'open-session') throw new InvalidArgumentError('open takes an open-session request')
    if (endpointKey(request.from) !== endpointKey(me.endpoint)) throw new InvalidArgumentError('open-session must come from the client\'s own endpoint')
    const peer = await this.#peer(url, auth)
    const reply = (await peer.request(request)) as OpenSessionReply
    peer.checkEndpoint(reply.from)
    const secret = peer.sessionSecret(request.sessionId)
    const qps = new Map(request.qps.map((o, i) => [o.qpn, reply.qps[i]!.qpn]))
    const creator: Participant = { endpoint: me.endpoint, qps, scope: new Set(CREATOR_SCOPE) }
    this.#sessions.set(request.sessionId, { id: request.sessionId, url, peer, secret, remote: reply.from, local: request.from, epoch: 0, members: new Map([[client, creator]]), creator: client, grants: new DaemonGrants() })
    // The creating process gets this session's secret only (never the channel's): it keys its QPs with it.
    return { op: 'opened', reply, secret: Buffer.from(secret).toString('base64url') }
  }

  async #relay(client: DaemonChannel, s: DaemonSession, request: PeerRequest): Promise<PeerReply> {
    const me = this.#registered(client)
    if (request.sessionId !== s.id || endpointKey(request.from) !== endpointKey(me.endpoint)) throw new InvalidArgumentError('a relayed request must name its session and come from the client\'s own endpoint')
    if (request.type === 'join-session') {
      if (s.members.has(client)) throw new InvalidArgumentError(`this process takes part in session '${s.id}' already`)
      // The token says which rights the joiner gets (a grant of the creator's, or a joiner's own QPs).
      const claims = verifyJoinToken(s.secret, s.id, request.token)
      const reply = await s.peer.request(request)
      if (reply.type === 'join-session') s.peer.checkEndpoint(reply.from)
      s.members.set(client, { endpoint: me.endpoint, qps: new Map(), scope: new Set(s.grants.take(claims.jti)) })
      return reply
    }
    const member = s.members.get(client)
    if (member === undefined) throw new JoinTokenError('missing', `this process is not part of session '${s.id}': join it first`, { sessionId: s.id })
    const scope = this.#scopeOf(s, client)
    if (request.type === 'close-session') {
      // Without the right to close the session, a process's close is its leaving: its QPs go, the session stays.
      if (scope.has('close') || scope.has('creator')) await this.#closeSession(s, request.reason, true, client)
      else await this.#leave(s, client, member, request)
      return { type: 'ack' }
    }
    if (request.type === 'add-qps') requireScope(scope, 'add-qps', s.id, 'adding QPs')
    if (request.type === 'rekey') requireScope(scope, 'rekey', s.id, 'a rekey')
    if (request.type === 'remove-qp') {
      requireScope(scope, 'remove-qp', s.id, 'removing a QP')
      // Each process removes only its own QPs.
      if (![...member.qps.values()].includes(request.qpn)) throw new QpNotFoundError(request.qpn, s.id)
    }
    // Session-wide requests go to the peer as the session holder's (the peer knows joiners by their tokens' scope, the daemon by role).
    const reply = await s.peer.request(request.type === 'rekey' ? { ...request, from: s.local } : request)
    switch (request.type) {
      case 'add-qps':
        if (reply.type === 'add-qps') request.qps.forEach((o, i) => member.qps.set(o.qpn, reply.qps[i]!.qpn))
        break
      case 'remove-qp':
        for (const [local, remote] of member.qps) if (remote === request.qpn) member.qps.delete(local)
        break
      case 'rekey':
        s.epoch = request.epoch
        await this.#tellMembers(s, { type: 'rekey', sessionId: s.id, from: s.remote, epoch: request.epoch }, client)
        break
      default:
        break
    }
    return reply
  }

  /** A process leaves a session it may not close. */
  async #leave(s: DaemonSession, client: DaemonChannel, member: Participant, request: PeerRequest): Promise<void> {
    s.members.delete(client)
    // The peer knows the creating process's endpoint as the session holder's (a close from it ends the
    // session): a former creator leaves by removing its QPs; a joiner's close is its leaving there too.
    if (endpointKey(member.endpoint) === endpointKey(s.local)) await Promise.all([...member.qps.values()].map((qpn) => s.peer.request({ type: 'remove-qp', sessionId: s.id, from: s.local, qpn }).catch(() => undefined)))
    else await s.peer.request(request).catch(() => undefined)
    if (s.members.size === 0) await this.#closeSession(s, 'every local process left', true)
  }

  /** A client process went away (exit or crash): its QPs are removed and the peer told; a session nobody uses any more is closed. */
  async #clientGone(client: DaemonChannel): Promise<void> {
    const info = this.#clients.get(client)
    this.#clients.delete(client)
    for (const s of [...this.#sessions.values()]) {
      const member = s.members.get(client)
      if (member === undefined) continue
      s.members.delete(client)
      if (s.creator === client) s.creator = null
      await Promise.all([...member.qps.values()].map((qpn) => s.peer.request({ type: 'remove-qp', sessionId: s.id, from: member.endpoint, qpn }).catch(() => undefined)))
      this.emit('client-gone', { id: info?.id, pid: info?.pid, sessionId: s.id, qps: member.qps.size })
      if (s.members.size === 0) await this.#closeSession(s, 'every local process left', true)
    }
  }

  // ---- peers

  #peer(url: string, auth: WireAuth): Promise<WsPeerChannel> {
    const key = `${url}|${'psk' in auth ? `psk:${auth.pskId ?? 'default'}:${auth.psk}` : 'passphrase' in auth ? `passphrase:${auth.pskId ?? 'default'}:${auth.passphrase}` : `id:${auth.identity}`}`
    let p = this.#peers.get(key)
    if (p === undefined) {
      const clientAuth = normalizeClientAuth('identity' in auth ? { identity: auth.identity, trusted: auth.trusted } : 'psk' in auth ? { psk: Buffer.from(auth.psk, 'base64url'), ...(auth.pskId ? { pskId: auth.pskId } : {}) } : auth)
      const opts = { ...(this.#options.keepalive ? { keepalive: this.#options.keepalive } : {}), ...(this.#options.reconnectGraceMs !== undefined ? { reconnectGraceMs: this.#options.reconnectGraceMs } : {}) }
      p = dialControl(url, clientAuth, 'peer', opts, (conn, redial) => new WsPeerChannel(conn, { ...opts, redial })).then((ch) => {
        ch.setHandler((req: PeerRequest) => this.#onPeer(ch, req))
        ch.onClosed((reason) => {
          this.#peers.delete(key)
          for (const s of [...this.#sessions.values()]) if (s.peer === ch) void this.#closeSession(s, `control channel lost: ${reason}`, false)
        })
        return ch
      })
      p.catch(() => this.#peers.delete(key))
      this.#peers.set(key, p)
    }
    return p
  }

  /** A request from a session's peer: routed to the local process(es) it concerns. */
  async #onPeer(channel: WsPeerChannel, request: PeerRequest): Promise<PeerReply> {
    const s = this.#sessions.get(request.sessionId)
    if (s === undefined || s.peer !== channel) throw new SessionNotFoundError(request.sessionId)
    channel.checkEndpoint(request.from)
    switch (request.type) {
      case 'remove-qp': {
        for (const [client, m] of s.members) {
          if (!m.qps.has(request.qpn)) continue
          m.qps.delete(request.qpn)
          return this.#toClient(client, s, request)
        }
        throw new SessionNotFoundError(s.id)
      }
      case 'close-session':
        await this.#closeSession(s, request.reason, false)
        return { type: 'ack' }
      case 'rekey':
        s.epoch = request.epoch
        await this.#tellMembers(s, request, null)
        return { type: 'ack' }
      case 'add-qps': {
        const owner = [...s.members].find(([c]) => c === s.creator) ?? [...s.members][0]
        if (owner === undefined) throw new PeerError('no local process hosts this session')
        const reply = await this.#toClient(owner[0], s, request)
        if (reply.type === 'add-qps') request.qps.forEach((o, i) => owner[1].qps.set(reply.qps[i]!.qpn, o.qpn))
        return reply
      }
      default:
        throw new UnsupportedError(`'${request.type}' from a peer (the daemon hosts no QPs of its own)`, 'daemon')
    }
  }

  async #toClient(client: DaemonChannel, s: DaemonSession, request: PeerRequest): Promise<PeerReply> {
    const reply = await client.request({ op: 'peer', sessionId: s.id, request })
    if (reply.op !== 'relayed') throw new PeerError('a client answered a peer request with a malformed reply')
    return reply.reply
  }

  async #tellMembers(s: DaemonSession, request: PeerRequest, except: DaemonChannel | null): Promise<void> {
    await Promise.all([...s.members.keys()].filter((c) => c !== except && !c.closed).map((c) => this.#toClient(c, s, request).catch(() => undefined)))
  }

  async #closeSession(s: DaemonSession, reason: string, tellPeer: boolean, except: DaemonChannel | null = null): Promise<void> {
    if (this.#sessions.get(s.id) !== s) return
    this.#sessions.delete(s.id)
    await this.#tellMembers(s, { type: 'close-session', sessionId: s.id, from: s.remote, reason }, except)
    if (tellPeer && !s.peer.closed) await s.peer.request({ type: 'close-session', sessionId: s.id, from: s.local, reason }).catch(() => undefined)
    this.emit('session-closed', { id: s.id, reason })
  }

  /** A join token for `s`; more than a joiner's scope only when `client` may grant it (the creator). */
  #token(client: DaemonChannel, s: DaemonSession, asked: readonly DaemonScope[]): DaemonReply {
    const scope = checkScopes(asked)
    if (scope.length > JOINER_SCOPE.length) requireScope(this.#scopeOf(s, client), 'creator', s.id, `granting ${scope.filter((x) => !JOINER_SCOPE.includes(x)).join(', ')}`)
    // The peer sees a joiner's own QPs only: session-wide requests reach it from the daemon, as the session holder's.
    const token = createJoinToken(s.secret, s.id, { scope: ['add-qps', 'remove-qp'], ttlMs: TOKEN_TTL_MS, maxQps: 65536 })
    const { claims } = splitJoinToken(token)
    s.grants.add(claims.jti, scope, claims.exp)
    return { op: 'token', url: s.url, token }
  }

  #scopeOf(s: DaemonSession, client: DaemonChannel): ReadonlySet<DaemonScope> {
    if (s.creator === client) return new Set(CREATOR_SCOPE)
    return s.members.get(client)?.scope ?? new Set()
  }

  #session(id: string): DaemonSession {
    const s = this.#sessions.get(id)
    if (s === undefined) throw new SessionNotFoundError(id)
    return s
  }

  #registered(client: DaemonChannel): { endpoint: EndpointRecord } {
    const c = this.#clients.get(client)
    if (c === undefined) throw new PeerError('register first')
    return c
  }
}

