/** A token bucket per peer: bounds how fast one peer may make us create QPs. */
import { RateLimitError } from '../errors.js'

export interface QpRateLimit {
  /** QPs a peer may create per second, sustained. Default 512. */
  readonly qpsPerSecond?: number
  /** QPs a peer may create at once. Default 4096 (one full request). */
  readonly burst?: number
}

export class QpCreationLimiter {
  readonly #rate: number
  readonly #burst: number
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  constructor(limit: QpRateLimit = {}) {
    this.#rate = limit.qpsPerSecond ?? 512
    this.#burst = limit.burst ?? 4096
  }

  /** Takes `count` QPs from `peer`'s bucket or throws ERR_RATE_LIMIT (taking nothing). */
  admit(peer: string, count: number): void {
    const now = performance.now()
    let b = this.#buckets.get(peer)
    if (b === undefined) {
      if (this.#buckets.size > 10_000) this.#prune(now)
      b = { tokens: this.#burst, at: now }
      this.#buckets.set(peer, b)
    }
    b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) / 1000) * this.#rate)
    b.at = now
    if (count > b.tokens) {
      throw new RateLimitError(`peer ${peer} may create ${Math.floor(b.tokens)} more QPs now (limit ${this.#rate}/s, burst ${this.#burst}); retry later`, { peer, requested: count, available: Math.floor(b.tokens) })
    }
    b.tokens -= count
  }

  #prune(now: number): void {
    for (const [k, b] of this.#buckets) if (b.tokens + ((now - b.at) / 1000) * this.#rate >= this.#burst) this.#buckets.delete(k)
  }
}
