/**
 * The requester's local ACK timer: one node timer per QP whose deadline moves
 * with every transmission and acknowledgment (so restarting it costs no timer
 * churn); it calls back only when the deadline has really passed.
 */

const now = (): number => performance.now()

export class RetransmitTimer {
  readonly timeoutMs: number
  readonly #onExpiry: () => void
  #timer: NodeJS.Timeout | null = null
  #deadline = 0
  readonly #fire = (): void => this.#fired()

  constructor(timeoutMs: number, onExpiry: () => void) {
    this.timeoutMs = timeoutMs
    this.#onExpiry = onExpiry
  }

  get running(): boolean {
    return this.#timer !== null
  }

  /** Starts the timer, or pushes its deadline to now + timeout when it runs. */
  restart(): void {
    if (this.timeoutMs === Infinity) return
    this.#deadline = now() + this.timeoutMs
    if (this.#timer === null) this.#timer = setTimeout(this.#fire, this.timeoutMs)
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  #fired(): void {
    this.#timer = null
    const left = this.#deadline - now()
    if (left > 0.5) {
      this.#timer = setTimeout(this.#fire, left)
      return
    }
    this.#onExpiry()
  }
}
