/**
 * One authenticated control connection over a ws socket: runs the handshake
 * (client or server side), then carries sealed JSON envelopes. During the
 * handshake a malformed, unknown, out-of-order or oversized frame gets an error
 * frame and the socket is closed. After it, only sealed frames are acted on: a
 * frame that does not authenticate (an injected text or error frame, a forged or
 * replayed one) is dropped and counted, and a socket that closes without the
 * peer's sealed `bye` is a failed link (the channel resumes), never a clean
 * end; an authenticated but malformed message ends the channel with a sealed
 * `bye` naming the error. Keepalive pings find a peer that stopped answering.
 */
import type { WebSocket } from 'ws'
import type { IncomingMessage } from 'node:http'
import { ErrorCode, ProtocolError, RdmaError, TimeoutError } from '../errors.js'
import type { NormalizedAuth } from './auth.js'
import { normalizeAddress } from './endpoint-binding.js'
import { MAX_FRAME_BYTES, check, checkVersion, errorFrameSchema, helloSchema, parseFrame, saltSchema, sealedMessageSchema, type ByeEnvelope, type Envelope, type HelloFrame } from './frames.js'
import { CLOSE_CODE, asRdmaError, parseJson, rawToBuffer, remoteError, runHandshake, terminateLater, tooBig, dialError } from './handshake-runner.js'
import { ClientHandshake, ServerHandshake, type AcceptChannel, type HandshakeResult, type Handshaken } from './handshake.js'
import { MAX_SEALED_BYTES, NonceExhaustedError, type FrameOpener, type FrameSealer } from './noise-transport.js'

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

/** Frames that do not authenticate one connection drops before it counts as a failed link (the channel then resumes on a new one). */
export const MAX_DROPPED_FRAMES = 64

export class ControlConnection {
  readonly ws: WebSocket
  readonly result: HandshakeResult
  /** The peer's IP address as the socket sees it (normalizeAddress: IPv4-mapped IPv6 as the dotted quad); null on a Unix socket. */
  readonly peerAddress: string | null
  #onEnvelope: ((env: Envelope) => void) | null = null
  /** Envelopes that arrived before a handler was set (they can share a TCP segment with the finish). */
  #inbox: Envelope[] = []
  #closeListeners: ((info: CloseInfo) => void)[] = []
  #sealer: FrameSealer
  #opener: FrameOpener
  #closed: CloseInfo | null = null
  #lastHeard = Date.now()
  #keepalive: NodeJS.Timeout | null = null
  #dropped = 0

  private constructor(ws: WebSocket, done: Handshaken, options: ConnectionOptions, peerAddress: string | undefined) {
    this.ws = ws
    this.result = done.result
    this.peerAddress = normalizeAddress(peerAddress)
    this.#sealer = done.sealer
    this.#opener = done.opener
    ws.on('message', (data, isBinary) => this.#onMessage(rawToBuffer(data), isBinary))
    ws.on('pong', () => (this.#lastHeard = Date.now()))
    ws.on('close', (code, reason) => this.#onSocketClose(code, reason.toString()))
    this.#startKeepalive(options.keepalive ?? {})
  }

  get closed(): boolean {
    return this.#closed !== null
  }
  /** Frames that did not authenticate (injected, forged, replayed, unsealed) and were dropped. */
  get droppedFrames(): number {
    return this.#dropped
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
    let sealed: Buffer
    try {
      sealed = this.#sealer.seal(bytes)
    } catch (err) {
      if (!(err instanceof NonceExhaustedError)) throw err
      // The keys are used up: a failed link, so the channel resumes on a new handshake with fresh keys.
      this.#linkFailed(new ProtocolError(err.message))
      return false
    }
    this.ws.send(sealed)
    return true
  }

  /** Test hook: seals arbitrary bytes as the next frame (fuzzing the authenticated layer). */
  sendSealedRaw(bytes: Buffer): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(this.#sealer.seal(bytes))
  }

  /** Ends the channel for a protocol violation: a sealed `bye` naming the error, then the socket closes. */
  fail(err: RdmaError): void {
    this.#sayBye(err)
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(CLOSE_CODE[err.code] ?? 1011, err.code)
    this.#finish({ error: err, transport: false })
    terminateLater(this.ws)
  }

  /** Ends the channel normally: a sealed `bye`, then close code 1000. */
  close(reason = 'closed'): void {
    this.#sayBye(null)
    if (this.#closed === null && this.ws.readyState === this.ws.OPEN) this.ws.close(1000, reason.slice(0, 100))
    this.#finish({ error: null, transport: false })
    terminateLater(this.ws)
  }

  /** Closes a connection its channel no longer uses (replaced by a resumed one), without a `bye`: the channel lives on. */
  retire(reason: string): void {
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
    let hs: ClientHandshake | null = null
    let stage: 'salt' | 'message 2' | 'ready' = 'message 2'
    let peerAddress: string | undefined
    ws.once('upgrade', (res: IncomingMessage) => (peerAddress = res.socket.remoteAddress))
    ws.once('open', () => {
      hs = new ClientHandshake(auth, purpose, resume)
      if (hs.awaitsSalt) stage = 'salt'
      ws.send(JSON.stringify(hs.hello))
    })
    ws.on('error', () => undefined)
    const timeoutMs = options.handshakeTimeoutMs ?? 10_000
    return runHandshake<ControlConnection>(ws, {
      timeoutMs,
      timeoutMessage: `the control handshake did not finish within ${timeoutMs} ms`,
      socketError: (e) => dialError(ws.url, e),
      closedWhat: 'the server closed the connection during the handshake',
      onFrame: async (buf, isBinary, finish) => {
        if (hs === null) throw new ProtocolError('a frame arrived before the hello was sent')
        if (!isBinary) {
          const frame = parseJson(buf.toString('utf8'), stage) as { t?: unknown } | null
          if (frame?.t === 'error') throw remoteError(check(errorFrameSchema, frame, 'error frame'))
          checkVersion(frame, stage)
          if (stage !== 'salt') throw new ProtocolError(`expected the binary ${stage} frame, got a text frame`)
          ws.send(await hs.onSalt(check(saltSchema, frame, 'salt')))
          stage = 'message 2'
        } else if (stage === 'message 2') {
          for (const out of hs.onMessage2(buf)) ws.send(out)
          stage = 'ready'
        } else if (stage === 'ready') {
          finish(new ControlConnection(ws, hs.onReady(buf), options, peerAddress))
        } else {
          throw new ProtocolError('expected the salt text frame, got a binary frame')
        }
      },
    })
  }

  /**
   * Server side. `acceptChannel` picks the channel once the client is
   * authenticated (a new one, or the one it resumes: then it returns that
   * channel's resume key, which the client's finish must prove).
   */
  static server(ws: WebSocket, auth: NormalizedAuth, purpose: HelloFrame['purpose'], acceptChannel: AcceptChannel, options: ConnectionOptions = {}, peerAddress?: string): Promise<{ conn: ControlConnection; hello: HelloFrame }> {
    let stage: 'hello' | 'message 1' | 'message 3' | 'finish' = 'hello'
    let hs: ServerHandshake | null = null
    const timeoutMs = options.handshakeTimeoutMs ?? 10_000
    const answer = (m1: Buffer): void => {
      ws.send(hs!.onMessage1(m1))
      stage = hs!.awaitsMessage3 ? 'message 3' : 'finish'
    }
    return runHandshake<{ conn: ControlConnection; hello: HelloFrame }>(ws, {
      timeoutMs,
      timeoutMessage: `no finished handshake within ${timeoutMs} ms`,
      socketError: () => new RdmaError(ErrorCode.CLOSED, 'control connection failed during the handshake'),
      closedWhat: 'the client left during the handshake',
      onFrame: (buf, isBinary, finish) => {
        if (buf.length > MAX_FRAME_BYTES) throw tooBig(buf.length)
        if (!isBinary) {
          const raw = parseJson(buf.toString('utf8'), stage)
          if ((raw as { t?: unknown } | null)?.t === 'error') throw new ProtocolError(`the client aborted the handshake: ${check(errorFrameSchema, raw, 'error frame').message}`)
          if (stage !== 'hello') throw new ProtocolError(`expected the binary ${stage} frame, got a text frame`)
          checkVersion(raw, 'hello')
          const hello = check(helloSchema, raw, 'hello')
          if (hello.purpose !== purpose) throw new ProtocolError(`this endpoint serves '${purpose}' connections, not '${hello.purpose}'`)
          hs = new ServerHandshake(auth, hello)
          const salt = hs.saltFrame
          if (salt !== null) {
            ws.send(JSON.stringify(salt))
            stage = 'message 1'
          } else answer(Buffer.from(hello.noise!, 'base64url'))
          return
        }
        if (hs === null) throw new ProtocolError('expected a hello text frame, got a binary frame')
        if (stage === 'message 1') answer(buf)
        else if (stage === 'message 3') {
          hs.onMessage3(buf)
          stage = 'finish'
        } else {
          const { ready, done } = hs.onFinish(buf, acceptChannel)
          ws.send(ready)
          finish({ conn: new ControlConnection(ws, done, options, peerAddress), hello: hs.hello })
        }
      },
    })
  }

  // ---- internals

  #onMessage(buf: Buffer, isBinary: boolean): void {
    if (this.#closed !== null) return
    // Only what authenticates is acted on: anyone on the path can inject a text frame or garbage.
    const sealed = isBinary && buf.length <= MAX_SEALED_BYTES
    const plain = sealed ? this.#opener.open(buf) : null
    if (plain === null) {
      if (sealed && this.#opener.opensAfterGap(buf)) this.#linkFailed(new ProtocolError('a sealed frame was lost or altered on the way (the next one authenticates only after a gap)'))
      else this.#drop()
      return
    }
    this.#lastHeard = Date.now()
    try {
      const msg = parseFrame(sealedMessageSchema, plain.toString('utf8'), 'message')
      if (msg.t === 'bye') this.#onBye(msg)
      else if (this.#onEnvelope !== null) this.#onEnvelope(msg)
      else if (this.#inbox.length < 256) this.#inbox.push(msg)
      else throw new ProtocolError('too many messages before the channel was ready')
    } catch (err) {
      this.fail(asRdmaError(err))
    }
  }

  /** Counts a frame that did not authenticate; too many make the link count as failed (the channel resumes on a fresh connection). */
  #drop(): void {
    if (++this.#dropped > MAX_DROPPED_FRAMES) this.#linkFailed(new ProtocolError(`more than ${MAX_DROPPED_FRAMES} frames on this connection did not authenticate`))
  }

  /** The sealed stream cannot go on: a transport failure, so the channel resumes on a new connection (and resends what is unanswered). */
  #linkFailed(err: RdmaError): void {
    this.#finish({ error: err, transport: true })
    this.ws.terminate()
  }

  /** The peer ended the channel (sealed, so it was the peer). */
  #onBye(bye: ByeEnvelope): void {
    this.#finish({ error: bye.error === undefined ? null : remoteError(bye.error), transport: false })
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000, 'bye')
    terminateLater(this.ws)
  }

  #sayBye(err: RdmaError | null): void {
    if (this.#closed !== null || this.ws.readyState !== this.ws.OPEN) return
    const bye: ByeEnvelope = err === null ? { t: 'bye' } : { t: 'bye', error: { code: err.code, message: err.message.slice(0, 2000) } }
    try {
      this.ws.send(this.#sealer.seal(Buffer.from(JSON.stringify(bye), 'utf8')))
    } catch {
      // the socket is going anyway
    }
  }

  #onSocketClose(code: number, reason: string): void {
    if (this.#closed !== null) return
    // Close frames are not sealed: without the peer's sealed bye this is a failed link, which the channel resumes.
    const err = new RdmaError(ErrorCode.CLOSED, `the control connection closed without the peer's sealed goodbye (code ${code}${reason === '' ? '' : `, ${reason.slice(0, 100)}`})`, { closeCode: code })
    this.#finish({ error: err, transport: true })
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
