/** A byte token bucket for one QP's rate limit (or a link's): refills continuously, may go negative by one packet (overdraft). */

/** Idle time a bucket may bank as burst, in ms. */
const BURST_MS = 5
/** The smallest burst by default: two full-MTU packets with headers. */
const MIN_BURST_BYTES = 2 * 4200
/**
 * How late a wake-up may be and still be made good, in ms of tokens: a QP that waits for tokens
 * with packets ready is owed the time its timer fired late (a busy event loop fires 1 ms timers
 * many ms late), or a limit of 10 MB/s moves 5 on a loaded host.
 */
const LATE_WAKE_MS = 50

export class TokenBucket {
  readonly bytesPerMs: number
  readonly burst: number
  tokens: number
  #at: number
  /** Out of tokens with packets ready (parked): the next refill may exceed the burst. */
  #waiting = false

  constructor(rateLimitBps: number, now: number, minBurstBytes = MIN_BURST_BYTES) {
    this.bytesPerMs = rateLimitBps / 1000
    this.burst = Math.max(minBurstBytes, this.bytesPerMs * BURST_MS)
    this.tokens = this.burst
    this.#at = now
  }

  refill(now: number): void {
    const dt = now - this.#at
    if (dt <= 0) return
    this.#at = now
    // Over a backlog the QP still never sends more than burst + rate x time. Credit a late wake-up
    // earned above the burst is kept until it is spent (a turn cut short by its time budget would
    // otherwise lose it at the next refill), but does not grow.
    const cap = this.#waiting ? Math.max(this.burst, this.bytesPerMs * LATE_WAKE_MS) : Math.max(this.burst, this.tokens)
    this.#waiting = false
    this.tokens = Math.min(cap, this.tokens + dt * this.bytesPerMs)
  }

  /** ms until the bucket is non-negative again (0 when it is). */
  waitMs(): number {
    return this.tokens >= 0 ? 0 : -this.tokens / this.bytesPerMs
  }

  /** The QP waits for tokens with packets ready: returns waitMs(), and the next refill makes good a late wake-up. */
  startWaiting(): number {
    this.#waiting = true
    return this.waitMs()
  }
}
