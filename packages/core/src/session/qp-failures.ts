/**
 * What a session does when one of its QPs fails (enters ERR on its own: transport retries
 * exhausted, a stalled or dead peer, a fatal error), and the record it keeps of each failure.
 * Both ends learn of a failure over the control channel and drop their end of the QP pair, so no
 * QP is left in RTS with its peer in ERR; the initiator then adds a replacement unless told not to.
 */

/**
 * `'replace'` (default): both ends remove the failed pair and the session's initiator adds a QP
 * with the same spec in its place (the autoscaler's path: one add-qps round trip).
 * `'remove'`: both ends remove it, and the session goes on with the QPs it has left.
 * A joiner's QPs are removed, never replaced.
 */
export type QpFailurePolicy = 'replace' | 'remove'

export const QP_FAILURE_POLICIES: readonly QpFailurePolicy[] = ['replace', 'remove']

/** One failed QP, as session.stats().failures and the 'qp-failed' event report it. */
export interface QpFailure {
  /** The failed QP (this side's QPN) and its peer's. */
  readonly qpn: number
  readonly remoteQpn: number | null
  readonly class: string
  /** Why: the status or fatal event, e.g. 'RETRY_EXC_ERR'; prefixed 'peer: ' when the peer saw it. */
  readonly reason: string
  /** Which end saw the QP fail: this one, or the peer (which told us over the control channel). */
  readonly detectedBy: 'local' | 'peer'
  /** 'replaced' once a replacement is connected; 'removed' when there is none (policy, not the initiator, or adding failed). */
  action: 'removing' | 'removed' | 'replacing' | 'replaced'
  /** The replacement's QPN, once connected. */
  replacedBy?: number
  /** Why the replacement could not be added. */
  replaceError?: string
  /** Date.now() when the failure was seen. */
  readonly at: number
}

/** How many failures a session remembers (oldest dropped first). */
export const FAILURE_LOG_SIZE = 32

/** The recent failures of one session, and how many there were in all. */
export class FailureLog {
  readonly #entries: QpFailure[] = []
  total = 0

  add(f: QpFailure): QpFailure {
    this.total++
    this.#entries.push(f)
    if (this.#entries.length > FAILURE_LOG_SIZE) this.#entries.shift()
    return f
  }

  /** Copies of the recent failures, oldest first. */
  snapshot(): QpFailure[] {
    return this.#entries.map((f) => ({ ...f }))
  }
}

/** Short reason text from a QP error: a failed WR's status (e.g. 'RETRY_EXC_ERR'), or the provider's fatal event message. */
export function failureReason(err: Error): string {
  const status = (err as { status?: unknown }).status
  return (typeof status === 'string' ? status : err.message).slice(0, 200)
}
