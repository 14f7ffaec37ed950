/**
 * Where a control-plane server applies its AdmissionPool to real sockets: every TCP or Unix
 * connection is pending from accept until its handshake finishes, within one deadline counted
 * from accept (so a peer that stalls before, during or after the HTTP upgrade, trickles bytes or
 * sends garbage holds its slot for at most that long). A refused or evicted connection gets
 * ERR_BUSY: as an error frame once it is a WebSocket, as an HTTP 503 before.
 */
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import { BusyError, TimeoutError, type RdmaError } from '../errors.js'
import { AdmissionPool, sourceKey, type AdmissionLimits } from './admission-pool.js'
import { failSocket } from './handshake-runner.js'

/** The response header that names the error of a connection refused before its WebSocket upgrade. */
export const REFUSAL_HEADER = 'x-rdma-session-error'

/** Counters of a server's admission of unauthenticated connections (ControlServer.admission). */
export interface AdmissionStats {
  /** Connections in the handshake now. */
  readonly pending: number
  /** The most that were pending at once. */
  readonly peakPending: number
  /** Connections let into the pending pool. */
  readonly admitted: number
  /** Handshakes that finished (the connection left the pool authenticated). */
  readonly completed: number
  /** Refused at accept by early random drop. */
  readonly earlyDropped: number
  /** Closed while pending to make room for a newcomer. */
  readonly evicted: number
  /** Closed while pending at the handshake deadline. */
  readonly timedOut: number
  readonly limits: Required<AdmissionLimits> & { readonly handshakeTimeoutMs: number }
}

interface Pending {
  readonly socket: Socket
  ws: WebSocket | null
  readonly timer: NodeJS.Timeout
}

export class AdmissionGate {
  readonly #pool: AdmissionPool<Pending>
  readonly #bySocket = new WeakMap<Socket, Pending>()
  readonly #deadlineMs: number
  #unixSeq = 0
  #peak = 0
  #admitted = 0
  #completed = 0
  #earlyDropped = 0
  #evicted = 0
  #timedOut = 0

  constructor(limits: AdmissionLimits | undefined, handshakeTimeoutMs: number, random?: () => number) {
    this.#pool = new AdmissionPool(limits, random)
    this.#deadlineMs = handshakeTimeoutMs
  }

  get stats(): AdmissionStats {
    return {
      pending: this.#pool.size,
      peakPending: this.#peak,
      admitted: this.#admitted,
      completed: this.#completed,
      earlyDropped: this.#earlyDropped,
      evicted: this.#evicted,
      timedOut: this.#timedOut,
      limits: { ...this.#pool.limits, handshakeTimeoutMs: this.#deadlineMs },
    }
  }

  /** A socket was accepted: admits it into the pending pool (closing others to make room) or refuses it. */
  accept(socket: Socket): void {
    const key = sourceKey(socket.remoteAddress, () => String(++this.#unixSeq))
    const entry: Pending = { socket, ws: null, timer: setTimeout(() => this.#expire(entry), this.#deadlineMs) }
    entry.timer.unref()
    const decision = this.#pool.admit(key, entry)
    if (!decision.admitted) {
      clearTimeout(entry.timer)
      this.#earlyDropped++
      refuse(socket, null, new BusyError('too many unfinished handshakes from your address; retry later', { reason: 'early-drop' }))
      return
    }
    this.#admitted++
    this.#peak = Math.max(this.#peak, this.#pool.size)
    this.#bySocket.set(socket, entry)
    socket.once('close', () => this.#leave(entry))
    for (const old of decision.evict) {
      this.#evicted++
      this.#leave(old)
      refuse(old.socket, old.ws, new BusyError('closed unauthenticated to make room for another connection: too many unfinished handshakes; retry later', { reason: 'evicted' }))
    }
  }

  /** The socket's WebSocket upgrade is done: a refusal or deadline now closes it with an error frame. False when the socket is no longer pending (it is then closed). */
  upgraded(socket: Socket, ws: WebSocket): boolean {
    const entry = this.#bySocket.get(socket)
    if (entry === undefined) {
      ws.terminate()
      return false
    }
    entry.ws = ws
    return true
  }

  /** The socket's handshake finished: it leaves the pending pool. */
  authenticated(socket: Socket): void {
    const entry = this.#bySocket.get(socket)
    if (entry !== undefined && this.#leave(entry)) this.#completed++
  }

  #expire(entry: Pending): void {
    if (!this.#leave(entry)) return
    this.#timedOut++
    refuse(entry.socket, entry.ws, new TimeoutError(`no finished handshake within ${this.#deadlineMs} ms of connecting`))
  }

  /** Takes `entry` out of the pool; false when it had already left. */
  #leave(entry: Pending): boolean {
    clearTimeout(entry.timer)
    this.#bySocket.delete(entry.socket)
    return this.#pool.remove(entry)
  }
}

/** Closes a connection that may not go on: an error frame on a WebSocket, an HTTP 503 naming the code on a socket not yet upgraded. */
function refuse(socket: Socket, ws: WebSocket | null, err: RdmaError): void {
  if (ws !== null) {
    failSocket(ws, err)
    return
  }
  if (socket.destroyed) return
  const body = `${err.code}: ${err.message}\n`
  const status = err.code === 'ERR_TIMEOUT' ? '408 Request Timeout' : '503 Service Unavailable'
  socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-type: text/plain\r\n${REFUSAL_HEADER}: ${err.code}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  // A peer that does not read or close is dropped soon; its bytes are not read meanwhile.
  const t = setTimeout(() => socket.destroy(), 1000)
  t.unref()
  socket.once('close', () => clearTimeout(t))
}
