/**
 * A request/response channel between two authenticated endpoints that
 * outlives its connections: when the link drops, the client redials and
 * resumes the channel (the server keeps it for a grace period); requests in
 * flight are sent again and answered once (replies are remembered by ID).
 */
import type * as v from 'valibot'
import { ClosedError, PeerError, ProtocolError, RdmaError, TimeoutError } from '../errors.js'
import { errorFromRecord, recordFromError } from '../session/peer-channel.js'
import type { CloseInfo, ControlConnection } from './control-connection.js'
import { check, type Envelope } from './frames.js'
import type { HandshakeResult } from './handshake.js'
import { wireErrorDetails } from './record-schema.js'
import { FIRST_BACKOFF_MS, backoff } from './backoff.js'

export interface ChannelOptions {
  /** A request unanswered this long fails with ERR_TIMEOUT. Default 30000 ms. */
  readonly requestTimeoutMs?: number
  /** How long a dropped connection may take to come back before the channel (and its sessions) close. Default 30000 ms. */
  readonly reconnectGraceMs?: number
}

export interface ChannelInit<Req> extends ChannelOptions {
  readonly result: HandshakeResult
  readonly requestSchema: v.GenericSchema<unknown, Req>
  readonly replySchema: v.GenericSchema
  /** Client side: opens a connection that resumes this channel. */
  readonly redial?: (resume: { channelId: string; resumeKey: Buffer }) => Promise<ControlConnection>
}

/** What a channel counts about its connections. */
export interface ChannelStats {
  /** Frames dropped because they did not authenticate (injected, unsealed, forged, replayed), over all its connections. */
  readonly droppedFrames: number
  /** Times the channel was resumed on a new connection. */
  readonly resumes: number
  /** Reconnect attempts that failed and were retried (busy server, timeout, link still down). */
  readonly failedRedials: number
  /** Why the last one failed (`ERR_…: message`). */
  readonly lastRedialError: string | null
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ChannelHandler<Req, Rep> = (request: Req, channel: any) => Promise<Rep>

interface Pending {
  readonly body: unknown
  readonly resolve: (reply: unknown) => void
  readonly reject: (err: Error) => void
  readonly timer: NodeJS.Timeout
}

const REMEMBERED_REPLIES = 256
const MAX_IN_FLIGHT = 256

export class ControlChannel<Req, Rep> {
  readonly id: string
  readonly peerId: string
  /** @internal */ readonly channelSecret: Buffer
  /** @internal */ readonly resumeKey: Buffer
  readonly #init: ChannelInit<Req>
  #conn: ControlConnection | null = null
  #handler: ChannelHandler<Req, Rep> | null = null
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  readonly #answered = new Map<number, Promise<Envelope>>()
  #inFlight = 0
  /** Requests that came before the owner set a handler. */
  readonly #early: [ControlConnection, number, unknown][] = []
  #closed: RdmaError | null = null
  #closeListeners: ((reason: string) => void)[] = []
  #grace: NodeJS.Timeout | null = null
  #redialing = false
  #lastRedialError: string | null = null
  #failedRedials = 0
  /** Dropped frames of connections this channel no longer uses. */
  #droppedBefore = 0
  #resumes = 0

  constructor(init: ChannelInit<Req>, conn: ControlConnection) {
    this.#init = init
    this.id = init.result.channelId
    this.peerId = init.result.peerId
    this.channelSecret = init.result.channelSecret
    this.resumeKey = init.result.resumeKey
    this.attach(conn)
  }

  get closed(): boolean {
    return this.#closed !== null
  }
  /** True while a connection is up. */
  get connected(): boolean {
    return this.#conn !== null && !this.#conn.closed
  }
  /** The live connection (tests drop it to exercise reconnects). */
  get connection(): ControlConnection | null {
    return this.#conn
  }
  stats(): ChannelStats {
    return { droppedFrames: this.#droppedBefore + (this.#conn?.droppedFrames ?? 0), resumes: this.#resumes, failedRedials: this.#failedRedials, lastRedialError: this.#lastRedialError }
  }

  setHandler(handler: ChannelHandler<Req, Rep>): void {
    this.#handler = handler
    for (const [conn, id, body] of this.#early.splice(0)) this.#onRequest(conn, id, body)
  }

  onClosed(listener: (reason: string) => void): void {
    if (this.#closed !== null) queueMicrotask(() => listener(this.#closed!.message))
    else this.#closeListeners.push(listener)
  }

  /** Sends a request; resolves with the checked reply or rejects with the peer's error code. */
  request(body: Req): Promise<Rep> {
    if (this.#closed !== null) return Promise.reject(new ClosedError(`control channel ${this.id.slice(0, 8)} (${this.#closed.message})`))
    try {
      check(this.#init.requestSchema, body, 'outgoing request')
    } catch (err) {
      return Promise.reject(err)
    }
    const id = this.#nextId++
    return new Promise<Rep>((resolve, reject) => {
      const ms = this.#init.requestTimeoutMs ?? 30_000
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new TimeoutError(`the peer did not answer a '${String((body as { type?: unknown; op?: unknown }).type ?? (body as { op?: unknown }).op)}' request within ${ms} ms`))
      }, ms)
      timer.unref()
      this.#pending.set(id, { body, resolve: resolve as (r: unknown) => void, reject, timer })
      this.#conn?.send({ t: 'req', id, body })
    })
  }

  /** Takes a (new or resumed) connection; requests still unanswered are sent on it. */
  attach(conn: ControlConnection): void {
    if (this.#closed !== null) {
      conn.close('channel closed')
      return
    }
    const old = this.#conn
    // The new connection is the channel's before the old one closes, so that close is not the channel's end.
    this.#conn = conn
    if (old !== conn) {
      if (conn.result.resumed) this.#resumes++
      if (old !== null) {
        this.#droppedBefore += old.droppedFrames
        if (!old.closed) old.retire('replaced by a resumed connection')
      }
    }
    if (this.#grace !== null) clearTimeout(this.#grace)
    this.#grace = null
    conn.setEnvelopeHandler((env) => this.#onEnvelope(conn, env))
    conn.onClose((info) => this.#onConnectionClosed(conn, info))
    for (const [id, p] of this.#pending) conn.send({ t: 'req', id, body: p.body })
  }

  /** Closes the channel for good: pending requests fail, the connection closes normally. */
  close(reason = 'closed'): void {
    this.#shut(new ClosedError(`control channel (${reason})`))
    this.#conn?.close(reason)
  }

  // ---- internals

  #onEnvelope(conn: ControlConnection, env: Envelope): void {
    if (env.t === 'req') {
      this.#onRequest(conn, env.id, env.body)
      return
    }
    const p = this.#pending.get(env.id)
    if (p === undefined) {
      // A late answer to a request that timed out is harmless; an answer to one never sent is not.
      if (env.id >= this.#nextId) conn.fail(new ProtocolError(`a reply to request ${env.id}, which was never sent`))
      return
    }
    this.#pending.delete(env.id)
    clearTimeout(p.timer)
    if (env.t === 'err') p.reject(errorFromRecord(env.error))
    else {
      try {
        p.resolve(check(this.#init.replySchema, env.body, 'reply'))
      } catch (err) {
        p.reject(err as Error)
        conn.fail(err as RdmaError)
      }
    }
  }

  #onRequest(conn: ControlConnection, id: number, body: unknown): void {
    if (this.#handler === null) {
      if (this.#early.length >= MAX_IN_FLIGHT) conn.fail(new ProtocolError(`more than ${MAX_IN_FLIGHT} requests in flight`))
      else this.#early.push([conn, id, body])
      return
    }
    const known = this.#answered.get(id)
    if (known !== undefined) {
      void known.then((reply) => this.#deliver(reply))
      return
    }
    let request: Req
    try {
      request = check(this.#init.requestSchema, body, 'request')
    } catch (err) {
      conn.fail(err as RdmaError)
      return
    }
    if (this.#inFlight >= MAX_IN_FLIGHT) {
      conn.fail(new ProtocolError(`more than ${MAX_IN_FLIGHT} requests in flight`))
      return
    }
    this.#inFlight++
    const answer = this.#answer(request).then((out): Envelope => (out.ok ? { t: 'res', id, ok: true, body: out.reply } : { t: 'err', id, error: out.error }))
    this.#answered.set(id, answer)
    if (this.#answered.size > REMEMBERED_REPLIES) this.#answered.delete(this.#answered.keys().next().value!)
    void answer.then((reply) => {
      this.#inFlight--
      this.#deliver(reply)
    })
  }

  /** Sends a reply on the live connection (if any; a resumed peer asks again); one too large to send becomes an error reply. */
  #deliver(reply: Envelope): void {
    try {
      this.#conn?.send(reply)
    } catch (err) {
      this.#conn?.send({ t: 'err', id: reply.id, error: { code: 'ERR_PROTOCOL', message: (err as Error).message.slice(0, 500) } })
    }
  }

  async #answer(request: Req): Promise<{ ok: true; reply: Rep } | { ok: false; error: { code: string; message: string; details?: Record<string, string | number | boolean | null> } }> {
    if (this.#handler === null) return { ok: false, error: { code: 'ERR_PEER', message: 'this endpoint serves no requests' } }
    try {
      return { ok: true, reply: await this.#handler(request, this) }
    } catch (err) {
      const rec = recordFromError(err)
      const details = wireErrorDetails(rec.details)
      return { ok: false, error: { code: /^ERR_[A-Z_]{1,40}$/.test(rec.code) ? rec.code : 'ERR_PEER', message: rec.message.slice(0, 2000), ...(details === undefined ? {} : { details }) } }
    }
  }

  #onConnectionClosed(conn: ControlConnection, info: CloseInfo): void {
    if (this.#conn !== conn || this.#closed !== null) return
    this.#droppedBefore += conn.droppedFrames
    this.#conn = null
    if (!info.transport) {
      this.#shut(info.error ?? new PeerError('the peer closed the control channel'))
      return
    }
    const graceMs = this.#init.reconnectGraceMs ?? 30_000
    this.#grace = setTimeout(() => this.#shut(new PeerError(`control connection lost (${info.error?.message ?? 'closed'}) and not resumed within ${graceMs} ms${this.#lastRedialError === null ? '' : `; last attempt: ${this.#lastRedialError}`}`)), graceMs)
    this.#grace.unref()
    if (this.#init.redial !== undefined) void this.#redial()
  }

  async #redial(): Promise<void> {
    if (this.#redialing) return
    this.#redialing = true
    let delay = FIRST_BACKOFF_MS
    try {
      while (this.#closed === null && this.#conn === null) {
        try {
          const conn = await this.#init.redial!({ channelId: this.id, resumeKey: this.resumeKey })
          if (!conn.result.resumed) {
            conn.close('channel unknown')
            this.#shut(new PeerError('the peer no longer knows this control channel; its sessions are gone'))
            return
          }
          this.attach(conn)
          return
        } catch (err) {
          // Refused for good only when authentication fails; a busy server, a timeout or a failed
          // link is retried with backoff until the grace period ends (its timer closes the channel).
          if (err instanceof RdmaError && err.code === 'ERR_AUTH') {
            this.#shut(err)
            return
          }
          this.#failedRedials++
          this.#lastRedialError = err instanceof RdmaError ? `${err.code}: ${err.message}` : String(err)
          delay = await backoff(delay)
        }
      }
    } finally {
      this.#redialing = false
    }
  }

  #shut(err: RdmaError): void {
    if (this.#closed !== null) return
    this.#closed = err
    if (this.#grace !== null) clearTimeout(this.#grace)
    this.#grace = null
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    this.#pending.clear()
    this.#answered.clear()
    const listeners = this.#closeListeners
    this.#closeListeners = []
    for (const l of listeners) l(err.message)
  }
}
