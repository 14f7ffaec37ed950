/**
 * A local process's handle on the session daemon: list and query the host's
 * sessions, create sessions through the daemon, and join sessions other
 * processes created to add QPs of this process to them.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto'
import type { Context } from '../context.js'
import { InvalidArgumentError, PeerError } from '../errors.js'
import type { PeerChannel, PeerRequestHandler } from '../session/peer-channel.js'
import type { CreateSessionOptions, RemoteSpec } from '../session/session-manager.js'
import type { Session } from '../session/session.js'
import { endpointKey, type PeerReply, type PeerRequest } from '../session/records.js'
import { normalizeClientAuth, publicKeyId, type ClientAuth, type KeyMaterial } from './auth.js'
import type { KeepaliveOptions } from './control-connection.js'
import { dialControl } from './control-server.js'
import type { DaemonRequest, DaemonSessionInfo, WireAuth } from './daemon-protocol.js'
import type { DaemonScope } from './daemon-roles.js'
import { DAEMON_PSK_ID, DaemonChannel } from './daemon-server.js'
import { checkDaemonSocket } from './private-path.js'

export interface DaemonClientOptions {
  readonly socketPath: string
  readonly token: KeyMaterial
  readonly keepalive?: KeepaliveOptions
  /** How long to retry, with backoff, a daemon that refuses the connection for now (ERR_BUSY: its pool of unfinished handshakes is full). Default 2000 ms. */
  readonly busyRetryMs?: number
}

export interface DaemonConnectOptions extends Omit<CreateSessionOptions, 'peer'> {
  readonly auth: ClientAuth
}

/** The PeerChannel of sessions this process holds through the daemon: requests go to the daemon, which relays them to the peer. */
class DaemonRelay implements PeerChannel {
  #handler: PeerRequestHandler | null = null
  #closeListeners: ((reason: string) => void)[] = []
  closed = false

  /** Secrets of the sessions this relay opened, as the daemon handed them over. */
  readonly #secrets = new Map<string, Uint8Array>()

  constructor(private readonly daemon: DaemonChannel, private readonly target: { url: string; auth: WireAuth } | null) {}

  async request(request: PeerRequest): Promise<PeerReply> {
    if (request.type === 'open-session') {
      if (this.target === null) throw new InvalidArgumentError('this relay cannot open sessions')
      const r = await this.daemon.request({ op: 'open', url: this.target.url, auth: this.target.auth, request })
      if (r.op !== 'opened') throw new PeerError('the daemon answered open with a malformed reply')
      this.#secrets.set(request.sessionId, new Uint8Array(Buffer.from(r.secret, 'base64url')))
      return r.reply
    }
    const r = await this.daemon.request({ op: 'relay', sessionId: request.sessionId, request })
    if (r.op !== 'relayed') throw new PeerError('the daemon answered a relay with a malformed reply')
    return r.reply
  }

  /** The secret of a session opened through this relay (derived by the daemon and the peer from their channel). */
  sessionSecret(sessionId: string): Uint8Array {
    const secret = this.#secrets.get(sessionId)
    if (secret === undefined) throw new InvalidArgumentError(`no secret for session '${sessionId}' on this relay`)
    this.#secrets.delete(sessionId)
    return secret
  }

  setHandler(handler: PeerRequestHandler): void {
    this.#handler = handler
  }

  onClosed(listener: (reason: string) => void): void {
    if (this.closed) queueMicrotask(() => listener('closed'))
    else this.#closeListeners.push(listener)
  }

  /** @internal the daemon forwards a request of the peer. */
  handle(request: PeerRequest): Promise<PeerReply> {
    if (this.#handler === null) return Promise.reject(new PeerError('this process serves no sessions'))
    return this.#handler(request, this)
  }

  close(reason = 'closed'): void {
    if (this.closed) return
    this.closed = true
    for (const l of this.#closeListeners.splice(0)) l(reason)
  }
}

function wireAuth(auth: ClientAuth): WireAuth {
  normalizeClientAuth(auth)
  if ('psk' in auth) return { psk: Buffer.from(typeof auth.psk === 'string' ? Buffer.from(auth.psk, 'utf8') : auth.psk).toString('base64url'), ...(auth.pskId ? { pskId: auth.pskId } : {}) }
  if ('passphrase' in auth) return { passphrase: auth.passphrase, ...(auth.pskId ? { pskId: auth.pskId } : {}) }
  const key: KeyObject = typeof auth.identity === 'string' ? createPrivateKey(auth.identity) : auth.identity
  return { identity: String(key.export({ format: 'pem', type: 'pkcs8' })), trusted: auth.trusted.map((k) => publicKeyId(k)) }
}

export class DaemonClient {
  readonly #channel: DaemonChannel
  readonly #ctx: Context | null
  readonly #relays = new Map<string, DaemonRelay>()
  #joinRelay: DaemonRelay | null = null
  /** This process's ID at the daemon (null without a context). */
  clientId: number | null = null

  private constructor(channel: DaemonChannel, ctx: Context | null) {
    this.#channel = channel
    this.#ctx = ctx
    channel.setHandler(async (req: DaemonRequest) => {
      if (req.op !== 'peer') throw new PeerError(`the daemon does not send '${req.op}'`)
      const relay = this.#relays.get(req.sessionId)
      if (relay === undefined) throw new PeerError(`session '${req.sessionId}' is not held by this process`)
      return { op: 'relayed', reply: await relay.handle(req.request) }
    })
    channel.onClosed((reason) => {
      for (const r of this.#relays.values()) r.close(`daemon connection lost: ${reason}`)
      this.#joinRelay?.close(reason)
    })
  }

  /** Connects to the daemon; with a context, registers it so it can create and join sessions. */
  static async connect(ctx: Context | null, options: DaemonClientOptions): Promise<DaemonClient> {
    // Before the token goes anywhere: the socket and its directory are this user's alone.
    checkDaemonSocket(options.socketPath, true)
    const auth = normalizeClientAuth({ psk: options.token, pskId: DAEMON_PSK_ID })
    const channel = await dialControl(`ws+unix:${options.socketPath}`, auth, 'daemon', { keepalive: options.keepalive, busyRetryMs: options.busyRetryMs }, (conn) => new DaemonChannel(conn, { reconnectGraceMs: 0 }))
    const client = new DaemonClient(channel, ctx)
    if (ctx !== null) {
      const r = await channel.request({ op: 'register', endpoint: ctx.endpoint, pid: process.pid })
      if (r.op === 'registered') client.clientId = r.clientId
    }
    return client
  }

  get closed(): boolean {
    return this.#channel.closed
  }

  /** Sessions of this host, optionally only those to `remote`. */
  async list(filter: { remote?: RemoteSpec } = {}): Promise<DaemonSessionInfo[]> {
    const remote = filter.remote === undefined ? undefined : typeof filter.remote === 'string' ? filter.remote : endpointKey(filter.remote)
    const r = await this.#channel.request({ op: 'list', ...(remote === undefined ? {} : { remote }) })
    if (r.op !== 'sessions') throw new PeerError('malformed reply')
    return r.sessions
  }

  /** The ID of the oldest session to `remote`, or undefined. */
  async query(remote: RemoteSpec): Promise<string | undefined> {
    return (await this.list({ remote }))[0]?.id
  }

  /** Creates a session through the daemon (which holds the control connection); other local processes can then join it. */
  async connect(url: string, options: DaemonConnectOptions): Promise<Session> {
    const ctx = this.#requireCtx()
    const relay = new DaemonRelay(this.#channel, { url, auth: wireAuth(options.auth) })
    ctx.sessions.serve(relay)
    const { auth: _auth, ...create } = options
    void _auth
    const session = await ctx.sessions.create({ ...create, peer: relay })
    this.#relays.set(session.id, relay)
    session.once('closed', () => this.#relays.delete(session.id))
    return session
  }

  /**
   * A join token for a session this process created, granting `scope` beyond
   * the joiner's own QPs ('rekey', 'close', 'creator'); hand it to the process
   * that should hold those rights, which joins with it. ERR_JOIN_TOKEN (scope)
   * when this process is not the session's creator.
   */
  async grant(sessionId: string, scope: readonly DaemonScope[]): Promise<string> {
    const t = await this.#channel.request({ op: 'token', sessionId, scope: [...scope] })
    if (t.op !== 'token') throw new PeerError('malformed reply')
    return t.token
  }

  /** Names another process of the session (by its clientId) as the session's creator; only the creator may. */
  async setCreator(sessionId: string, clientId: number): Promise<void> {
    const r = await this.#channel.request({ op: 'set-creator', sessionId, clientId })
    if (r.op !== 'done') throw new PeerError('malformed reply')
  }

  /**
   * Joins a session another local process holds through the daemon; add QPs
   * with session.addQps(). Without a token this process manages only its own
   * QPs; with one from grant() it has the rights granted.
   */
  async join(sessionId: string, options: { token?: string } = {}): Promise<Session> {
    const ctx = this.#requireCtx()
    const t = options.token === undefined ? await this.#channel.request({ op: 'token', sessionId }) : { op: 'token' as const, token: options.token }
    if (t.op !== 'token') throw new PeerError('malformed reply')
    if (this.#joinRelay === null || this.#joinRelay.closed) {
      this.#joinRelay = new DaemonRelay(this.#channel, null)
      ctx.sessions.serve(this.#joinRelay)
    }
    this.#relays.set(sessionId, this.#joinRelay)
    try {
      const session = await ctx.sessions.join(this.#joinRelay, t.token)
      session.once('closed', () => this.#relays.delete(sessionId))
      return session
    } catch (err) {
      this.#relays.delete(sessionId)
      throw err
    }
  }

  close(): void {
    this.#channel.close('client closed')
  }

  #requireCtx(): Context {
    if (this.#ctx === null) throw new InvalidArgumentError('connect the daemon client with a context to create or join sessions')
    return this.#ctx
  }
}

/** Connects `ctx` (or null, to only list) to the session daemon at `socketPath`. */
export function connectDaemon(ctx: Context | null, options: DaemonClientOptions): Promise<DaemonClient> {
  return DaemonClient.connect(ctx, options)
}
