/**
 * One authenticated control connection over a ws socket: runs the handshake
 * (client or server side), then carries sealed JSON envelopes. A malformed,
 * unknown, out-of-order or oversized frame gets an error frame and the socket
 * is closed; keepalive pings find a peer that stopped answering.
 */
import type { WebSocket, RawData } from 'ws'
import { ConnectionRefusedError, ErrorCode, ProtocolError, RdmaError, TimeoutError, isRdmaError } from '../errors.js'
import type { NormalizedAuth } from './auth.js'
import { MAX_FRAME_BYTES, check, envelopeSchema, errorFrameSchema, finishSchema, helloSchema, parseFrame, welcomeSchema, type Envelope, type HelloFrame } from './frames.js'
import { clientFinish, clientHello, serverFinish, serverWelcome, type HandshakeResult } from './handshake.js'
import { FrameOpener, FrameSealer } from './sealed-frames.js'

export interface KeepaliveOptions {
  /** How often to ping the peer. Default 5000 ms. */
  readonly intervalMs?: number
  /** A peer silent this long is dead. Default 15000 ms. */
  readonly timeoutMs?: number
}

export interface ConnectionOptions {
  readonly keepalive?: KeepaliveOptions
  /** Default 10000 ms. */
  readonly handshakeTimeoutMs?: number
}

/** Why a connection ended. `transport` is true when the link failed (reset, silence) rather than the peer refusing us. */
export interface CloseInfo {
  readonly error: RdmaError | null
  readonly transport: boolean
}

/** ws close codes used with the error code as the reason. */
const CLOSE_CODE: Partial<Record<string, number>> = { [ErrorCode.AUTH]: 1008, [ErrorCode.PROTOCOL]: 1002, [ErrorCode.TIMEOUT]: 4000 }
const TOO_BIG = 1009

function rawToBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data as ArrayBuffer)
}

export class ControlConnection {
  readonly ws: WebSocket
  readonly result: HandshakeResult
  #onEnvelope: ((env: Envelope) => void) | null = null
  /** Envelopes that arrived before a handler was set (they can share a TCP segment with the finish). */
  #inbox: Envelope[] = []
  #closeListeners: ((info: CloseInfo) => void)[] = []
  #sealer: FrameSealer
  #opener: FrameOpener
  #closed: CloseInfo | null = null
  #lastHeard = Date.now()
  #keepalive: NodeJS.Timeout | null = null

  private constructor(ws: WebSocket, result: HandshakeResult, options: ConnectionOptions) {
    this.ws = ws
    this.result = result
    this.#sealer = new FrameSealer(result.sendKey, result.sendIv)
    this.#opener = new FrameOpener(result.recvKey, result.recvIv)
    ws.on('message', (data, isBinary) => this.#onMessage(rawToBuffer(data), isBinary))
    ws.on('pong', () => (this.#lastHeard = Date.now()))
    ws.on('close', (code, reason) => this.#onSocketClose(code, reason.toString()))
    this.#startKeepalive(options.keepalive ?? {})
  }

  get closed(): boolean {
    return this.#closed !== null
  }

  /** Sets who gets each envelope the peer sends (authenticated and schema-checked); earlier ones are delivered now. */
  setEnvelopeHandler(handler: (env: Envelope) => void): void {
    this.#onEnvelope = handler
    for (const env of this.#inbox.splice(0)) if (this.#closed === null) handler(env)
  }

  onClose(listener: (info: CloseInfo) => void): void {
    if (this.#closed !== null) listener(this.#closed)
    else this.#closeListeners.push(listener)
  }

  /** Seals and sends one envelope. Returns false when the socket is gone. */
  send(env: Envelope): boolean {
    if (this.#closed !== null || this.ws.readyState !== this.ws.OPEN) return false
    const bytes = Buffer.from(JSON.stringify(env), 'utf8')
    if (bytes.length > MAX_FRAME_BYTES) throw new ProtocolError(`a ${bytes.length}-byte message exceeds the ${MAX_FRAME_BYTES}-byte frame limit`)
    this.ws.send(this.#sealer.seal(bytes))
    return true
  }

  /** Test hook: seals arbitrary bytes as the next frame (fuzzing the authenticated layer). */
  sendSealedRaw(bytes: Buffer): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(this.#sealer.seal(bytes))
  }

  /** Sends an error frame and closes: what every protocol violation gets. */
  fail(err: RdmaError): void {
    failSocket(this.ws, err)
    this.#finish({ error: err, transport: false })
  }

  /** Closes normally (code 1000). */
  close(reason = 'closed'): void {
    if (this.#closed === null && this.ws.readyState === this.ws.OPEN) this.ws.close(1000, reason.slice(0, 100))
    this.#finish({ error: null, transport: false })
    terminateLater(this.ws)
  }

  /** Test hook: drops the socket without a close handshake, as a network failure would. */
  destroy(): void {
    this.ws.terminate()
  }

  // ---- handshakes

  static client(ws: WebSocket, auth: NormalizedAuth, purpose: HelloFrame['purpose'], resume: { channelId: string; resumeKey: Buffer } | null, options: ConnectionOptions = {}): Promise<ControlConnection> {
    let hs: ReturnType<typeof clientHello> | null = null
    ws.once('open', () => {
      hs = clientHello(auth, purpose, resume?.channelId ?? null)
      ws.send(JSON.stringify(hs.hello))
    })
    ws.on('error', () => undefined)
    const timeoutMs = options.handshakeTimeoutMs ?? 10_000
    return runHandshake<ControlConnection>(ws, {
      timeoutMs,
      timeoutMessage: `the control handshake did not finish within ${timeoutMs} ms`,
      socketError: (e) => dialError(ws.url, e),
      closedWhat: 'the server closed the connection during the handshake',
      onFrame: (buf, isBinary, finish) => {
        if (isBinary || hs === null) throw new ProtocolError('expected a welcome text frame')
        const frame = parseJson(buf.toString('utf8'), 'welcome') as { t?: unknown } | null
        if (frame?.t === 'error') throw remoteError(check(errorFrameSchema, frame, 'error frame'))
        const welcome = check(welcomeSchema, frame, 'welcome')
        if (resume !== null && welcome.resumed && welcome.channel !== resume.channelId) throw new ProtocolError('the server resumed another channel')
        const { finish: finishFrame, result } = clientFinish(auth, hs, welcome, resume !== null && welcome.resumed ? resume.resumeKey : null)
        ws.send(JSON.stringify(finishFrame))
        finish(new ControlConnection(ws, result, options))
      },
    })
  }

  /**
   * Server side. `acceptChannel` picks the channel for this hello (a new one, or
   * the one it resumes: then it returns that channel's resume key).
   */
  static server(ws: WebSocket, auth: NormalizedAuth, purpose: HelloFrame['purpose'], acceptChannel: (hello: HelloFrame, peerId: string) => { id: string; resumed: boolean; resumeKey: Buffer | null }, options: ConnectionOptions = {}): Promise<{ conn: ControlConnection; hello: HelloFrame }> {
    let stage: 'hello' | 'finish' = 'hello'
    let hello: HelloFrame | null = null
    let pending: { hs: ReturnType<typeof serverWelcome>; resumeKey: Buffer | null } | null = null
    const timeoutMs = options.handshakeTimeoutMs ?? 10_000
    return runHandshake<{ conn: ControlConnection; hello: HelloFrame }>(ws, {
      timeoutMs,
      timeoutMessage: `no finished handshake within ${timeoutMs} ms`,
      socketError: () => new RdmaError(ErrorCode.CLOSED, 'control connection failed during the handshake'),
      closedWhat: 'the client left during the handshake',
      onFrame: (buf, isBinary, finish) => {
        if (buf.length > MAX_FRAME_BYTES) throw tooBig(buf.length)
        if (isBinary) throw new ProtocolError(`expected a ${stage} text frame, got a binary frame`)
        const raw = parseJson(buf.toString('utf8'), stage)
        if ((raw as { t?: unknown } | null)?.t === 'error') throw new ProtocolError(`the client aborted the handshake: ${check(errorFrameSchema, raw, 'error frame').message}`)
        if (stage === 'hello') {
          hello = check(helloSchema, raw, 'hello')
          if (hello.purpose !== purpose) throw new ProtocolError(`this endpoint serves '${purpose}' connections, not '${hello.purpose}'`)
          const peerId = hello.auth === 'psk' ? `psk:${String(hello.pskId)}` : `ed25519:${String(hello.identity)}`
          const channel = acceptChannel(hello, peerId)
          pending = { hs: serverWelcome(auth, hello, channel), resumeKey: channel.resumeKey }
          ws.send(JSON.stringify(pending.hs.welcome))
          stage = 'finish'
        } else {
          const result = serverFinish(pending!.hs, check(finishSchema, raw, 'finish'), pending!.resumeKey)
          finish({ conn: new ControlConnection(ws, result, options), hello: hello! })
        }
      },
    })
  }

  // ---- internals

  #onMessage(buf: Buffer, isBinary: boolean): void {
    if (this.#closed !== null) return
    this.#lastHeard = Date.now()
    try {
      if (buf.length > MAX_FRAME_BYTES) throw tooBig(buf.length)
      if (!isBinary) {
        const frame = parseFrame(errorFrameSchema, buf.toString('utf8'), 'text frame after the handshake')
        const err = remoteError(frame)
        this.#finish({ error: err, transport: false })
        terminateLater(this.ws)
        return
      }
      const plain = this.#opener.open(buf)
      if (plain === null) throw new ProtocolError('a frame did not authenticate (forged, replayed or out of order)')
      const env = parseFrame(envelopeSchema, plain.toString('utf8'), 'message')
      if (this.#onEnvelope !== null) this.#onEnvelope(env)
      else if (this.#inbox.length < 256) this.#inbox.push(env)
      else throw new ProtocolError('too many messages before the channel was ready')
    } catch (err) {
      this.fail(asRdmaError(err))
    }
  }

  #onSocketClose(code: number, reason: string): void {
    if (this.#closed !== null) return
    const err = closeError(code, reason, 'the control connection closed')
    this.#finish({ error: err, transport: err !== null && (code === 1006 || code === 1001 || code === 1011) })
  }

  #startKeepalive(o: KeepaliveOptions): void {
    const interval = o.intervalMs ?? 5000
    const timeout = o.timeoutMs ?? 15_000
    this.#keepalive = setInterval(() => {
      if (Date.now() - this.#lastHeard > timeout) {
        const err = new TimeoutError(`the peer answered no keepalive for ${timeout} ms`)
        this.#finish({ error: err, transport: true })
        this.ws.terminate()
        return
      }
      if (this.ws.readyState === this.ws.OPEN) this.ws.ping()
    }, interval)
    this.#keepalive.unref()
  }

  #finish(info: CloseInfo): void {
    if (this.#closed !== null) return
    this.#closed = info
    if (this.#keepalive !== null) clearInterval(this.#keepalive)
    this.#keepalive = null
    const listeners = this.#closeListeners
    this.#closeListeners = []
    for (const l of listeners) l(info)
  }
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new ProtocolError(`${what}: not JSON`)
  }
}

function tooBig(n: number): RdmaError {
  return new ProtocolError(`a ${n}-byte frame exceeds the ${MAX_FRAME_BYTES}-byte limit`, { bytes: n, limit: MAX_FRAME_BYTES })
}

function asRdmaError(err: unknown): RdmaError {
  if (isRdmaError(err)) return err
  return new ProtocolError(err instanceof Error ? err.message : String(err))
}

function remoteError(frame: { code: string; message: string }): RdmaError {
  const known = (Object.values(ErrorCode) as string[]).includes(frame.code) ? (frame.code as ErrorCode) : ErrorCode.PEER
  return new RdmaError(known, `peer: ${frame.message}`, { peerCode: frame.code })
}

interface HandshakeSteps<T> {
  readonly timeoutMs: number
  readonly timeoutMessage: string
  /** The error a socket error during the handshake gives. */
  readonly socketError: (e: Error) => RdmaError
  /** What a close during the handshake says. */
  readonly closedWhat: string
  /** One frame from the peer: throws to fail the handshake, calls `finish` with the result when it is done. */
  readonly onFrame: (buf: Buffer, isBinary: boolean, finish: (result: T) => void) => void
}

/**
 * What both sides of the handshake share: it settles once, on a timeout, a socket error or close,
 * a frame that throws (the socket then gets an error frame and is closed), or `finish`; then its
 * timer and listeners are gone.
 */
function runHandshake<T>(ws: WebSocket, steps: HandshakeSteps<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    let settled = false
    const timer = setTimeout(() => done(new TimeoutError(steps.timeoutMessage)), steps.timeoutMs)
    const done = (err: RdmaError | null, result?: T): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      ws.off('error', onError)
      ws.off('close', onClose)
      ws.off('message', onMessage)
      if (err !== null) {
        failSocket(ws, err)
        reject(err)
      } else resolve(result!)
    }
    const onError = (e: Error): void => done(steps.socketError(e))
    const onClose = (code: number, reason: Buffer): void => done(closeError(code, reason.toString(), steps.closedWhat) ?? new RdmaError(ErrorCode.CLOSED, steps.closedWhat))
    function onMessage(data: RawData, isBinary: boolean): void {
      if (settled) return
      try {
        steps.onFrame(rawToBuffer(data), isBinary, (result) => done(null, result))
      } catch (err) {
        done(asRdmaError(err))
      }
    }
    ws.on('error', onError)
    ws.on('close', onClose)
    ws.on('message', onMessage)
  })
}

/** The error a close code and reason stand for; null for a normal close. */
function closeError(code: number, reason: string, what: string): RdmaError | null {
  if (code === 1000) return null
  if (code === TOO_BIG) return new ProtocolError(`${what}: frame too large (1009)`)
  const known = (Object.values(ErrorCode) as string[]).includes(reason) ? (reason as ErrorCode) : ErrorCode.CLOSED
  return new RdmaError(known, `${what} (code ${code}${reason === '' ? '' : `, ${reason}`})`, { closeCode: code })
}

/**
 * The error a socket error before the handshake gives the dialling side: nothing listening
 * (ECONNREFUSED, or ENOENT: no Unix socket file) is ERR_CONNECTION_REFUSED, anything else
 * (a reset, a TLS or HTTP failure) ERR_CLOSED.
 */
function dialError(url: string, e: Error): RdmaError {
  const errno = (e as NodeJS.ErrnoException).code
  if (errno === 'ECONNREFUSED' || errno === 'ENOENT') {
    return new ConnectionRefusedError(url, `nothing listens at ${url} (${errno}): is the peer, or the session daemon, running there?`, { errno })
  }
  return new RdmaError(ErrorCode.CLOSED, `control connection failed: ${e.message}`, errno === undefined ? {} : { errno })
}

/** Sends an error frame (plain text: the last frame) and closes the socket with a code naming the failure. */
export function failSocket(ws: WebSocket, err: RdmaError): void {
  if (ws.readyState === ws.OPEN) {
    try {
      ws.send(JSON.stringify({ t: 'error', code: err.code, message: err.message.slice(0, 2000) }))
      const tooLarge = err.code === ErrorCode.PROTOCOL && typeof err.details.limit === 'number'
      ws.close(tooLarge ? TOO_BIG : (CLOSE_CODE[err.code] ?? 1011), err.code)
    } catch {
      ws.terminate()
    }
  } else if (ws.readyState === ws.CONNECTING) {
    ws.terminate()
  }
  terminateLater(ws)
}

/** A socket whose peer does not finish the close handshake is dropped after a second. */
function terminateLater(ws: WebSocket): void {
  const t = setTimeout(() => ws.terminate(), 1000)
  t.unref()
  ws.once('close', () => clearTimeout(t))
}
