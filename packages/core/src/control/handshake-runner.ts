/**
 * What both ends of a control connection do with the raw ws socket: run the
 * handshake steps (one settle: timeout, socket error or close, a failing step,
 * or done), fail a socket with a plain error frame and a close code naming the
 * error, and map close codes and error frames back to errors.
 */
import type { WebSocket, RawData } from 'ws'
import { BusyError, ConnectionRefusedError, ErrorCode, ProtocolError, RdmaError, TimeoutError, isRdmaError } from '../errors.js'
import { MAX_FRAME_BYTES } from './frames.js'

/** ws close codes used with the error code as the reason (1013: try again later). */
export const CLOSE_CODE: Partial<Record<string, number>> = { [ErrorCode.AUTH]: 1008, [ErrorCode.PROTOCOL]: 1002, [ErrorCode.TIMEOUT]: 4000, [ErrorCode.BUSY]: 1013 }
const TOO_BIG = 1009

export function rawToBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data as ArrayBuffer)
}

/**
 * The error a socket error before the handshake gives the dialling side: nothing listening
 * (ECONNREFUSED, or ENOENT: no Unix socket file) is ERR_CONNECTION_REFUSED; a server that
 * refused us before the WebSocket upgrade (its admission of unauthenticated connections: HTTP
 * 503, or 408 at its handshake deadline) ERR_BUSY or ERR_TIMEOUT; anything else (a reset, a TLS
 * or HTTP failure) ERR_CLOSED.
 */
export function dialError(url: string, e: Error): RdmaError {
  const errno = (e as NodeJS.ErrnoException).code
  const status = /^Unexpected server response: (\d+)$/.exec(e.message)?.[1]
  if (status === '503') return new BusyError(`the server at ${url} refused the connection for now (HTTP 503: too many unfinished handshakes); retry later`, { status: 503 })
  if (status === '408') return new TimeoutError(`the server at ${url} closed the connection at its handshake deadline (HTTP 408)`, { status: 408 })
  if (errno === 'ECONNREFUSED' || errno === 'ENOENT') {
    return new ConnectionRefusedError(url, `nothing listens at ${url} (${errno}): is the peer, or the session daemon, running there?`, { errno })
  }
  return new RdmaError(ErrorCode.CLOSED, `control connection failed: ${e.message}`, errno === undefined ? {} : { errno })
}

export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new ProtocolError(`${what}: not JSON`)
  }
}

export function tooBig(n: number): RdmaError {
  return new ProtocolError(`a ${n}-byte frame exceeds the ${MAX_FRAME_BYTES}-byte limit`, { bytes: n, limit: MAX_FRAME_BYTES })
}

export function asRdmaError(err: unknown): RdmaError {
  if (isRdmaError(err)) return err
  return new ProtocolError(err instanceof Error ? err.message : String(err))
}

export function remoteError(frame: { code: string; message: string }): RdmaError {
  const known = (Object.values(ErrorCode) as string[]).includes(frame.code) ? (frame.code as ErrorCode) : ErrorCode.PEER
  return new RdmaError(known, `peer: ${frame.message}`, { peerCode: frame.code })
}

export interface HandshakeSteps<T> {
  readonly timeoutMs: number
  readonly timeoutMessage: string
  /** The error a socket error during the handshake gives. */
  readonly socketError: (e: Error) => RdmaError
  /** What a close during the handshake says. */
  readonly closedWhat: string
  /** One frame from the peer: throws (or rejects) to fail the handshake, calls `finish` with the result when it is done. */
  readonly onFrame: (buf: Buffer, isBinary: boolean, finish: (result: T) => void) => void | Promise<void>
}

/**
 * What both sides of the handshake share: it settles once, on a timeout, a socket error or close,
 * a frame that throws (the socket then gets an error frame and is closed), or `finish`; then its
 * timer and listeners are gone.
 */
export function runHandshake<T>(ws: WebSocket, steps: HandshakeSteps<T>): Promise<T> {
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
    // A step may wait (a passphrase is stretched); no frame may arrive meanwhile: the peer is waiting for us.
    let busy = false
    function onMessage(data: RawData, isBinary: boolean): void {
      if (settled) return
      if (busy) {
        done(new ProtocolError('a frame arrived before this side answered the last one'))
        return
      }
      try {
        const step = steps.onFrame(rawToBuffer(data), isBinary, (result) => done(null, result))
        if (step instanceof Promise) {
          busy = true
          step.then(() => (busy = false), (err: unknown) => done(asRdmaError(err)))
        }
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
export function closeError(code: number, reason: string, what: string): RdmaError | null {
  if (code === 1000) return null
  if (code === TOO_BIG) return new ProtocolError(`${what}: frame too large (1009)`)
  const known = (Object.values(ErrorCode) as string[]).includes(reason) ? (reason as ErrorCode) : ErrorCode.CLOSED
  return new RdmaError(known, `${what} (code ${code}${reason === '' ? '' : `, ${reason}`})`, { closeCode: code })
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
export function terminateLater(ws: WebSocket): void {
  const t = setTimeout(() => ws.terminate(), 1000)
  t.unref()
  ws.once('close', () => clearTimeout(t))
}
