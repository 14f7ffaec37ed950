/**
 * A ws endpoint (TCP port or Unix socket) that authenticates every connection
 * and hands each new channel to its owner; a connection that resumes a channel
 * is attached to it instead. Unauthenticated connections are admitted through
 * an AdmissionGate, with a budget of their own; `maxConnections` bounds only
 * authenticated ones. Also `dialControl`, the client side.
 */
import { TypedEventEmitter } from '../typed-events.js'
import { randomBytes } from 'node:crypto'
import { chmodSync, lstatSync, unlinkSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { connect as netConnect, type Socket } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { BusyError, InvalidArgumentError } from '../errors.js'
import type { AdmissionLimits } from './admission-pool.js'
import { AdmissionGate, type AdmissionStats } from './admission-gate.js'
import type { Session } from '../session/session.js'
import { withListenerKey, type NormalizedAuth } from './auth.js'
import type { ControlChannel } from './control-channel.js'
import { ControlConnection, type ConnectionOptions } from './control-connection.js'
import { failSocket } from './handshake-runner.js'
import { retryWhileBusy } from './backoff.js'
import { MAX_FRAME_BYTES, type HelloFrame } from './frames.js'

/** ws itself drops frames above this (code 1009); frames between MAX_FRAME_BYTES and this get our error reply first. */
export const WS_MAX_PAYLOAD = 2 * MAX_FRAME_BYTES

export interface EndpointOptions extends ConnectionOptions {
  /** TCP port (0 = any free one). */
  readonly port?: number
  /** Address to bind; default 127.0.0.1. */
  readonly host?: string
  /** A Unix socket path instead of a port; created with mode 0600. */
  readonly socketPath?: string
  /** Most simultaneous authenticated connections (unfinished handshakes do not count: see `admission`). Default 256. */
  readonly maxConnections?: number
  /** The budget of connections that have not finished the handshake: per source address, in total, early drop. */
  readonly admission?: AdmissionLimits
  /** The kernel's queue of connections not yet accepted (capped by net.core.somaxconn). Default 4096. */
  readonly backlog?: number
}

/** A server's handshake deadline, counted from accept, unless `handshakeTimeoutMs` says otherwise: short, as unauthenticated peers hold a slot until it. */
export const DEFAULT_SERVER_HANDSHAKE_MS = 5000
export const DEFAULT_MAX_CONNECTIONS = 256
/**
 * Deep enough that a burst of connections (a flood) does not overflow it: a client whose SYN the
 * kernel drops waits a second before it tries again, so overflow shows as 1 s steps in dial time.
 */
export const DEFAULT_BACKLOG = 4096

/** What ControlServer.admission reports: the pending pool's counters, plus the authenticated connections and their limit. */
export interface ServerAdmissionStats extends AdmissionStats {
  /** Authenticated connections open now. */
  readonly authenticatedConnections: number
  readonly maxConnections: number
  /** Handshakes refused with ERR_BUSY because maxConnections authenticated connections were open. */
  readonly refusedAtLimit: number
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyChannel = ControlChannel<any, any>

/** A control server's events: each new channel, each refused connection, and (peer servers, ctx.listen) each session a peer opens. */
export interface ControlServerEvents<C> {
  channel: [channel: C]
  rejected: [err: Error]
  session: [session: Session]
}

export class ControlServer<C extends AnyChannel = AnyChannel> extends TypedEventEmitter<ControlServerEvents<C>> {
  readonly #http: Server
  readonly #wss: WebSocketServer
  readonly #channels = new Map<string, C>()
  readonly #socketPath: string | null
  readonly #gate: AdmissionGate
  readonly #maxConnections: number
  /** Every open socket, pending or authenticated. */
  readonly #sockets = new Set<Socket>()
  readonly #authenticated = new Set<ControlConnection>()
  #refusedAtLimit = 0
  #closing: Promise<void> | null = null

  private constructor(http: Server, wss: WebSocketServer, socketPath: string | null, gate: AdmissionGate, maxConnections: number) {
    super()
    this.#http = http
    this.#wss = wss
    this.#socketPath = socketPath
    this.#gate = gate
    this.#maxConnections = maxConnections
  }

  /**
   * Starts listening. `makeChannel` turns a finished handshake into a channel;
   * `onChannel` gets each new one. Event 'rejected' (err) reports refused connections.
   */
  static async start<C extends AnyChannel>(options: EndpointOptions, auth: NormalizedAuth, purpose: HelloFrame['purpose'], makeChannel: (conn: ControlConnection, remoteAddress: string) => C, onChannel: (channel: C) => void): Promise<ControlServer<C>> {
    if (options.socketPath === undefined && options.port === undefined) throw new InvalidArgumentError('listen() needs a port or a socketPath')
    const http = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' })
      res.end('rdma-session control plane: connect with a WebSocket client\n')
    })
    const wss = new WebSocketServer({ server: http, maxPayload: WS_MAX_PAYLOAD, perMessageDeflate: false })
    // Socket-level errors (EMFILE, resets) must not crash the process; each connection handles its own.
    wss.on('error', () => undefined)
    // A passphrase is stretched once per listener, under a salt drawn now.
    const keys = await withListenerKey(auth)
    const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS
    if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new InvalidArgumentError(`maxConnections must be a positive integer, got ${String(maxConnections)}`, { attribute: 'maxConnections' })
    const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_SERVER_HANDSHAKE_MS
    const connOptions = { ...options, handshakeTimeoutMs }
    const server = new ControlServer<C>(http, wss, options.socketPath ?? null, new AdmissionGate(options.admission, handshakeTimeoutMs), maxConnections)
    // Admission starts at accept, before any byte is read: a socket that never upgrades holds a pending slot too.
    http.on('connection', (socket: Socket) => {
      server.#sockets.add(socket)
      socket.once('close', () => server.#sockets.delete(socket))
      server.#gate.accept(socket)
    })
    wss.on('connection', (ws, req) => {
      ws.on('error', () => undefined)
      if (server.#closing !== null) {
        // Refused for now, not for good: a client resuming a channel retries with backoff.
        failSocket(ws, new BusyError('the server is closing'))
        return
      }
      if (!server.#gate.upgraded(req.socket, ws)) return
      const accept = (hello: HelloFrame, peerId: string): { id: string; resumed: boolean; resumeKey: Buffer | null } => {
        // Checked when the hello arrives, against authenticated connections only: stalled handshakes never fill it.
        if (server.#authenticated.size >= maxConnections) {
          server.#refusedAtLimit++
          throw new BusyError(`the server is at its limit of ${maxConnections} connections (maxConnections: authenticated peers only); retry later`, { maxConnections })
        }
        const old = hello.resume === undefined ? undefined : server.#channels.get(hello.resume)
        if (old !== undefined && !old.closed && old.peerId === peerId) return { id: old.id, resumed: true, resumeKey: old.resumeKey }
        return { id: randomBytes(16).toString('hex'), resumed: false, resumeKey: null }
      }
      ControlConnection.server(ws, keys, purpose, accept, connOptions, req.socket.remoteAddress).then(
        ({ conn }) => {
          server.#gate.authenticated(req.socket)
          if (server.#closing !== null) {
            conn.close('server closing')
            return
          }
          server.#authenticated.add(conn)
          conn.onClose(() => server.#authenticated.delete(conn))
          const old = server.#channels.get(conn.result.channelId)
          if (conn.result.resumed && old !== undefined) {
            old.attach(conn)
            return
          }
          const channel = makeChannel(conn, req.socket.remoteAddress ?? 'unknown')
          server.#channels.set(channel.id, channel)
          channel.onClosed(() => server.#channels.delete(channel.id))
          onChannel(channel)
          server.emit('channel', channel)
        },
        (err: unknown) => {
          if (server.listenerCount('rejected') > 0) server.emit('rejected', err as Error)
        },
      ).catch((err: unknown) => {
        // An owner that fails to take a channel must not take the process down.
        if (server.listenerCount('rejected') > 0) server.emit('rejected', err as Error)
      })
    })
    await listen(http, options)
    return server
  }

  /** `ws://host:port` or `ws+unix:<path>`: what connect() takes. */
  get url(): string {
    if (this.#socketPath !== null) return `ws+unix:${this.#socketPath}`
    const a = this.#http.address()
    if (a === null || typeof a === 'string') return `ws+unix:${String(a)}`
    return `ws://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
  }
  get port(): number | null {
    const a = this.#http.address()
    return a !== null && typeof a === 'object' ? a.port : null
  }
  get socketPath(): string | null {
    return this.#socketPath
  }
  /** Open sockets, including unfinished handshakes. */
  get connections(): number {
    return this.#sockets.size
  }
  /** How unauthenticated connections are admitted and authenticated ones bounded: limits and counters (also in ctx.metrics()). */
  get admission(): ServerAdmissionStats {
    return { ...this.#gate.stats, authenticatedConnections: this.#authenticated.size, maxConnections: this.#maxConnections, refusedAtLimit: this.#refusedAtLimit }
  }
  /** Live channels (connected or waiting to be resumed). */
  get channels(): C[] {
    return [...this.#channels.values()]
  }

  /** Closes every channel and connection, then stops listening (and removes the socket file). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const ch of [...this.#channels.values()]) ch.close('server closed')
      for (const ws of this.#wss.clients) ws.terminate()
      for (const socket of this.#sockets) socket.destroy()
      await new Promise<void>((r) => this.#wss.close(() => r()))
      await new Promise<void>((r) => this.#http.close(() => r()))
      this.#http.closeAllConnections?.()
      if (this.#socketPath !== null) {
        try {
          unlinkSync(this.#socketPath)
        } catch {
          // already gone
        }
      }
    })()
    return this.#closing
  }
}

async function listen(http: Server, options: EndpointOptions): Promise<void> {
  const path = options.socketPath
  const backlog = options.backlog ?? DEFAULT_BACKLOG
  if (path !== undefined) await removeStaleSocket(path)
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    if (path !== undefined) {
      const old = process.umask(0o177)
      try {
        http.listen({ path, backlog }, () => resolve())
      } finally {
        process.umask(old)
      }
    } else http.listen({ port: options.port, host: options.host ?? '127.0.0.1', backlog }, () => resolve())
  })
  if (path !== undefined) chmodSync(path, 0o600)
  http.on('error', () => undefined)
}

/** Removes a socket file left by a process that died; refuses when something still listens there. */
async function removeStaleSocket(path: string): Promise<void> {
  let st
  try {
    st = lstatSync(path)
  } catch {
    return
  }
  if (!st.isSocket()) throw new InvalidArgumentError(`${path} exists and is not a socket; choose another socketPath`)
  const alive = await new Promise<boolean>((resolve) => {
    const s = netConnect(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
  if (alive) throw new InvalidArgumentError(`something already listens on ${path} (another daemon?)`)
  unlinkSync(path)
}

/** Opens a socket to `url` (ws://… or ws+unix:<path>), from `localAddress` when given. */
export function openSocket(url: string, handshakeTimeoutMs = 10_000, localAddress?: string): WebSocket {
  const target = url.startsWith('ws+unix:') && !url.includes(':/', 'ws+unix:'.length) ? `${url}:/` : url
  return new WebSocket(target, { maxPayload: WS_MAX_PAYLOAD, perMessageDeflate: false, handshakeTimeout: handshakeTimeoutMs, ...(localAddress === undefined ? {} : { localAddress }) })
}

/** How long a first dial retries a server that answers ERR_BUSY (its admission or connection limit), unless busyRetryMs says otherwise. */
export const DEFAULT_BUSY_RETRY_MS = 2000

export interface DialControlOptions extends ConnectionOptions {
  readonly localAddress?: string
  /** How long to retry, with backoff, a server that refuses this dial for now (ERR_BUSY); 0 fails at once. Default 2000 ms. */
  readonly busyRetryMs?: number
}

/** Dials `url`, authenticates, and builds the channel (which redials by itself when the link drops). */
export async function dialControl<C extends AnyChannel>(url: string, auth: NormalizedAuth, purpose: HelloFrame['purpose'], options: DialControlOptions, makeChannel: (conn: ControlConnection, redial: (resume: { channelId: string; resumeKey: Buffer }) => Promise<ControlConnection>) => C): Promise<C> {
  if (typeof url !== 'string' || !/^(ws|wss):\/\/|^ws\+unix:/.test(url)) throw new InvalidArgumentError(`control URL must be ws://host:port or ws+unix:<path>, got ${String(url)}`)
  const redial = (resume: { channelId: string; resumeKey: Buffer } | null): Promise<ControlConnection> => ControlConnection.client(openSocket(url, options.handshakeTimeoutMs, options.localAddress), auth, purpose, resume, options)
  const conn = await retryWhileBusy(() => redial(null), options.busyRetryMs ?? DEFAULT_BUSY_RETRY_MS)
  return makeChannel(conn, redial)
}
