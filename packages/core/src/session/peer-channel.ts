/**
 * The link between two session managers. The control plane (ws) implements
 * it across processes and hosts; `InProcessLink` joins two contexts in one process.
 */
import { ErrorCode, PeerError, RdmaError, isRdmaError, registeredErrorCode, type RdmaErrorCode } from '../errors.js'
import type { EndpointRecord, ErrorRecord, PeerReply, PeerRequest, PeerResult, QpSpec } from './records.js'
import type { PeerAccount } from '../control/peer-quota.js'
import type { QueuePair } from '../queue-pair.js'
import type { Session } from './session.js'

export type PeerRequestHandler = (request: PeerRequest, channel: PeerChannel) => Promise<PeerReply>

export interface PeerChannel {
  /** Sends a request and resolves with the reply; rejects with an RdmaError carrying the peer's code. */
  request(request: PeerRequest): Promise<PeerReply>
  /** Installs the handler for requests that arrive from the peer. */
  setHandler(handler: PeerRequestHandler): void
  /** True once the channel can carry no more requests. */
  readonly closed: boolean
  close(): void
  /** Control-plane channels: the secret of a session opened over this channel, derived by both ends from the handshake (it never travels). */
  sessionSecret?(sessionId: string): Uint8Array
  /** Throws ERR_RATE_LIMIT when the peer may not make us create `count` more QPs now. */
  admitQps?(count: number): void
  /** Control-plane servers: the quota account of the peer's authenticated identity (shared by all its channels). */
  readonly quota?: PeerAccount
  /** Calls `listener` once the channel is closed for good (the peer is gone). */
  onClosed?(listener: (reason: string) => void): void
  /** Control-plane channels: frames dropped because they did not authenticate, and resumes on new connections. */
  stats?(): { readonly droppedFrames: number; readonly resumes: number }
  /** Control-plane channels: throws ERR_PEER when the peer may not declare `declared` as its RoCE endpoint (it is not bound to the connection). */
  checkEndpoint?(declared: EndpointRecord): void
  /**
   * Channels whose transport makes each QP itself (rdma_cm: one CM connection per QP): creates and
   * connects QPs for `session` (not yet adopted), in place of an add-qps request.
   */
  connectQps?(session: Session, specs: readonly QpSpec[]): Promise<QueuePair[]>
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode))

/** Turns an error record from the peer back into an error with the same code (core's, or one a package registered here; else ERR_PEER). */
export function errorFromRecord(rec: ErrorRecord): RdmaError {
  const known = KNOWN_CODES.has(rec.code) || registeredErrorCode(rec.code) !== undefined
  const code = known ? (rec.code as RdmaErrorCode) : ErrorCode.PEER
  return new RdmaError(code, `peer: ${rec.message}`, { ...rec.details, peerCode: rec.code })
}

/** Turns a handler's failure into a record for the wire. */
export function recordFromError(err: unknown): ErrorRecord {
  if (isRdmaError(err)) return { code: err.code, message: err.message, details: err.details }
  return { code: ErrorCode.PEER, message: err instanceof Error ? err.message : String(err) }
}

/** Runs a handler and packs its outcome as a PeerResult. */
export async function handleToResult(handler: PeerRequestHandler | null, request: PeerRequest, channel: PeerChannel): Promise<PeerResult> {
  if (handler === null) return { ok: false, error: { code: ErrorCode.PEER, message: 'the peer serves no sessions' } }
  try {
    return { ok: true, reply: await handler(request, channel) }
  } catch (err) {
    return { ok: false, error: recordFromError(err) }
  }
}

/** How long closing waits for the peer to acknowledge a notice (an unreachable peer must not hold up a close). */
export const NOTICE_TIMEOUT_MS = 2000

/** Waits for a best-effort notice to the peer, at most NOTICE_TIMEOUT_MS; its failure is ignored. */
export async function notice(request: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([request.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, NOTICE_TIMEOUT_MS)))])
  clearTimeout(timer)
}

class InProcessEnd implements PeerChannel {
  other!: InProcessEnd
  handler: PeerRequestHandler | null = null
  closed = false

  async request(request: PeerRequest): Promise<PeerReply> {
    if (this.closed || this.other.closed) throw new PeerError('the in-process link is closed')
    // A copy, as a wire would make: the two sides never share objects.
    const copy = structuredClone(request)
    await new Promise((r) => setImmediate(r))
    const result = structuredClone(await handleToResult(this.other.handler, copy, this.other))
    if (!result.ok) throw errorFromRecord(result.error)
    return result.reply
  }

  setHandler(handler: PeerRequestHandler): void {
    this.handler = handler
  }

  close(): void {
    this.closed = true
  }
}

/** Two joined channel ends: what one end requests, the other's handler answers. */
export function createInProcessLink(): [PeerChannel, PeerChannel] {
  const a = new InProcessEnd()
  const b = new InProcessEnd()
  a.other = b
  b.other = a
  return [a, b]
}
