/**
 * The requester's local ACK timer: one node timer per QP whose deadline moves
 * with every transmission and acknowledgment (so restarting it costs no timer
 * churn); it calls back only when the deadline has really passed, and only
 * after the event loop has polled for I/O once more: node runs due timers
 * before it reads sockets, so after this process was stalled (a loaded host)
 * an ACK that arrived in time would otherwise be read after a spurious
 * go-back-N of the whole window.
 */

const now = (): number => performance.now()

export class RetransmitTimer {
  readonly timeoutMs: number
  readonly #onExpiry: () => void
  #timer: NodeJS.Timeout | null = null
  /** The expiry, deferred past the next I/O poll (setImmediate runs after it). */
  #check: NodeJS.Immediate | null = null
  #deadline = 0
  readonly #fire = (): void => this.#fired()
  readonly #checked = (): void => this.#afterPoll()

  constructor(timeoutMs: number, onExpiry: () => void) {
    this.timeoutMs = timeoutMs
    this.#onExpiry = onExpiry
  }

  get running(): boolean {
    return this.#timer !== null || this.#check !== null
  }

  /** Starts the timer, or pushes its deadline to now + timeout when it runs. */
  restart(): void {
    if (this.timeoutMs === Infinity) return
    this.#deadline = now() + this.timeoutMs
    if (this.#timer === null && this.#check === null) this.#timer = setTimeout(this.#fire, this.timeoutMs)
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#check !== null) clearImmediate(this.#check)
    this.#timer = null
    this.#check = null
  }

  #fired(): void {
    this.#timer = null
    const left = this.#deadline - now()
    if (left > 0.5) {
      this.#timer = setTimeout(this.#fire, left)
      return
    }
    this.#check = setImmediate(this.#checked)
  }

  #afterPoll(): void {
    this.#check = null
    const left = this.#deadline - now()
    if (left > 0.5) {
      this.#timer = setTimeout(this.#fire, left)
      return
    }
    this.#onExpiry()
  }
}
