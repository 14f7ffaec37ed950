/**
 * An anti-replay window over a sender's 32-bit packet counter (the low half
 * of the IV): packets older than the window, or seen before, are replays.
 * Marked only after a packet authenticates, so forged packets cannot shift it.
 */

export const MIN_REPLAY_WINDOW = 64
export const MAX_REPLAY_WINDOW = 1024

export class ReplayWindow {
  readonly size: number
  /** The highest counter accepted so far (-1 before the first packet). */
  #top = -1
  readonly #bits: Uint8Array

  constructor(size: number) {
    const s = Math.min(MAX_REPLAY_WINDOW, Math.max(MIN_REPLAY_WINDOW, Math.floor(size)))
    this.size = s
    this.#bits = new Uint8Array(s)
  }

  /** True when `n` may be accepted (not seen, not older than the window). */
  check(n: number): boolean {
    if (n > this.#top) return true
    if (this.#top - n >= this.size) return false
    return this.#bits[n % this.size] === 0
  }

  /** Records `n` as seen; call only after check(n) and successful authentication. */
  mark(n: number): void {
    const size = this.size
    if (n > this.#top) {
      const shift = this.#top < 0 ? size : n - this.#top
      if (shift >= size) this.#bits.fill(0)
      else for (let k = this.#top + 1; k <= n; k++) this.#bits[k % size] = 0
      this.#top = n
    }
    this.#bits[n % size] = 1
  }
}
