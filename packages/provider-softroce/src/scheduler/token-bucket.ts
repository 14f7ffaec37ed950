/** A byte token bucket for one QP's rate limit: refills continuously, may go negative by one packet (overdraft). */

/** Idle time a bucket may bank as burst, in ms. */
const BURST_MS = 2
/** The smallest burst, so one full-MTU packet always fits. */
const MIN_BURST_BYTES = 2 * 4200

export class TokenBucket {
  readonly bytesPerMs: number
  readonly burst: number
  tokens: number
  #at: number

  constructor(rateLimitBps: number, now: number) {
    this.bytesPerMs = rateLimitBps / 1000
    this.burst = Math.max(MIN_BURST_BYTES, this.bytesPerMs * BURST_MS)
    this.tokens = this.burst
    this.#at = now
  }

  refill(now: number): void {
    const dt = now - this.#at
    if (dt <= 0) return
    this.#at = now
    this.tokens = Math.min(this.burst, this.tokens + dt * this.bytesPerMs)
  }

  /** ms until the bucket is non-negative again (0 when it is). */
  waitMs(): number {
    return this.tokens >= 0 ? 0 : -this.tokens / this.bytesPerMs
  }
}
