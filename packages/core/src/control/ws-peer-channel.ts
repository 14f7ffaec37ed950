/**
 * The session layer's PeerChannel over the ws control plane, and the context
 * entry points built on it: listen, dial, connect (create a session) and join
 * (take part in a session another connection holds, with a join token).
 */
import type { Context } from '../context.js'
import type { PeerChannel } from '../session/peer-channel.js'
import type { CreateSessionOptions } from '../session/session-manager.js'
import type { Session } from '../session/session.js'
import type { EndpointRecord, PeerReply, PeerRequest } from '../session/records.js'
import { normalizeClientAuth, normalizeServerAuth, type ClientAuth, type ServerAuth } from './auth.js'
import { ControlChannel, type ChannelOptions } from './control-channel.js'
import type { ControlConnection } from './control-connection.js'
import { ControlServer, dialControl, type EndpointOptions } from './control-server.js'
import { checkDeclaredEndpoint, type EndpointPolicy } from './endpoint-binding.js'
import { deriveSessionSecret } from './handshake.js'
import { QpCreationLimiter, type QpRateLimit } from './rate-limit.js'
import { PeerQuotas, type PeerAccount, type PeerQuotaLimits } from './peer-quota.js'
import { peerReplySchema, peerRequestSchema } from './record-schema.js'

/** Who may declare which RoCE endpoint on a channel. */
export interface EndpointBindingOptions {
  /** Replaces the default rule (the declared address is the control connection's source address): see EndpointPolicy. */
  readonly allowEndpoint?: EndpointPolicy
}

export class WsPeerChannel extends ControlChannel<PeerRequest, PeerReply> implements PeerChannel {
  readonly #limiter: QpCreationLimiter | null
  /** The peer's authenticated identity: rate-limit buckets and quotas are kept per identity, whatever its source address. */
  readonly #identity: string
  readonly quota?: PeerAccount
  /** The peer's address as the connection that made this channel saw it (null: Unix socket). */
  readonly peerAddress: string | null
  readonly #policy: EndpointPolicy | undefined

  constructor(conn: ControlConnection, options: ChannelOptions & EndpointBindingOptions & { limiter?: QpCreationLimiter | null; quotas?: PeerQuotas; remoteAddress?: string; redial?: (resume: { channelId: string; resumeKey: Buffer }) => Promise<ControlConnection> }) {
    super({ ...options, result: conn.result, requestSchema: peerRequestSchema as never, replySchema: peerReplySchema }, conn)
    this.#limiter = options.limiter ?? null
    this.#identity = conn.result.peerId
    if (options.quotas !== undefined) this.quota = options.quotas.account(this.#identity)
    this.peerAddress = conn.peerAddress
    this.#policy = options.allowEndpoint
  }

  /** Throws ERR_PEER when the peer may not declare `declared` as its RoCE endpoint. */
  checkEndpoint(declared: EndpointRecord): void {
    checkDeclaredEndpoint(declared, { address: this.peerAddress, peerId: this.peerId }, this.#policy)
  }

  /** The secret of a session opened over this channel: derived by both ends from the handshake; it never travels. */
  sessionSecret(sessionId: string): Uint8Array {
    return deriveSessionSecret(this.channelSecret, sessionId)
  }

  /** Throws ERR_RATE_LIMIT when the peer may not create `count` more QPs now. */
  admitQps(count: number): void {
    this.#limiter?.admit(this.#identity, count)
  }
}

export interface ListenOptions extends EndpointOptions, ChannelOptions, EndpointBindingOptions {
  readonly auth: ServerAuth
  /** Bounds on how fast one peer (authenticated identity) may make us create QPs. */
  readonly rateLimit?: QpRateLimit
  /** What one peer (authenticated identity, over all its connections) may make us hold: QPs, sessions, QP memory. */
  readonly quota?: PeerQuotaLimits
}

export interface DialOptions extends ChannelOptions, EndpointBindingOptions {
  readonly auth: ClientAuth
  /** The local address to dial from: on a multi-homed host, the RoCE interface's, so the peer's endpoint binding accepts this context's endpoint. */
  readonly localAddress?: string
  readonly keepalive?: EndpointOptions['keepalive']
  readonly handshakeTimeoutMs?: number
  /** How long to retry, with backoff, a server that refuses the dial for now (ERR_BUSY: its admission of unauthenticated connections, or maxConnections); 0 fails at once. Default 2000 ms. */
  readonly busyRetryMs?: number
}

export interface ConnectOptions extends DialOptions, Omit<CreateSessionOptions, 'peer'> {}

export interface JoinOptions extends DialOptions {
  /** The token the session holder made with session.createJoinToken(). */
  readonly token: string
}

/** The control-plane server of a context: every channel it accepts is served by ctx.sessions. Event 'session' for each session a peer opens through it. */
export type PeerServer = ControlServer<WsPeerChannel>

export async function listenForPeers(ctx: Context, options: ListenOptions): Promise<PeerServer> {
  const auth = normalizeServerAuth(options?.auth)
  const limiter = new QpCreationLimiter(options.rateLimit)
  const quotas = new PeerQuotas(options.quota)
  const server = await ControlServer.start<WsPeerChannel>(
    options,
    auth,
    'peer',
    (conn) => new WsPeerChannel(conn, { ...options, limiter, quotas }),
    (channel) => ctx.sessions.serve(channel),
  )
  const onSession = (s: Session): void => {
    if (server.channels.includes(s.peer as WsPeerChannel)) server.emit('session', s)
  }
  ctx.sessions.on('session', onSession)
  const close = server.close.bind(server)
  server.close = () => {
    ctx.sessions.off('session', onSession)
    return close()
  }
  return server
}

/** Opens an authenticated channel to a peer's control plane; ctx.sessions answers the peer's requests on it. */
export async function dialPeer(ctx: Context, url: string, options: DialOptions): Promise<WsPeerChannel> {
  const auth = normalizeClientAuth(options?.auth)
  const channel = await dialControl(url, auth, 'peer', options, (conn, redial) => new WsPeerChannel(conn, { ...options, redial }))
  ctx.sessions.serve(channel)
  return channel
}

/** Dials the peer and creates a session with its first QPs; the channel closes with the session. */
export async function connectSession(ctx: Context, url: string, options: ConnectOptions): Promise<Session> {
  const channel = await dialPeer(ctx, url, options)
  try {
    const session = await ctx.sessions.create({ ...options, peer: channel })
    session.once('closed', () => channel.close('session closed'))
    return session
  } catch (err) {
    channel.close('session not created')
    throw err
  }
}

/** Dials the peer on a new connection and joins a session another connection holds; the channel closes when the joined session does. */
export async function joinSession(ctx: Context, url: string, options: JoinOptions): Promise<Session> {
  const channel = await dialPeer(ctx, url, options)
  try {
    const session = await ctx.sessions.join(channel, options.token)
    session.once('closed', () => channel.close('session closed'))
    return session
  } catch (err) {
    channel.close('join failed')
    throw err
  }
}
