/**
 * The requester's local ACK timer: one node timer per QP whose deadline moves
 * with every transmission and acknowledgment (so restarting it costs no timer
 * churn, and stopping it only disarms it: a ping-pong that stops and restarts
 * the timer once per round trip does not insert and remove a node timer each
 * time; a disarmed timer that comes due just lapses); it calls back only when
 * the deadline has really passed, and only
 * after the event loop has polled for I/O once more: node runs due timers
 * before it reads sockets, so after this process was stalled (a loaded host)
 * an ACK that arrived in time would otherwise be read after a spurious
 * go-back-N of the whole window.
 */
import { performance } from 'node:perf_hooks'

const now = (): number => performance.now()

export class RetransmitTimer {
  readonly timeoutMs: number
  readonly #onExpiry: () => void
  #timer: NodeJS.Timeout | null = null
  /** The expiry, deferred past the next I/O poll (setImmediate runs after it). */
  #check: NodeJS.Immediate | null = null
  #deadline = 0
  #armed = false
  readonly #fire = (): void => this.#fired()
  readonly #checked = (): void => this.#afterPoll()

  constructor(timeoutMs: number, onExpiry: () => void) {
    this.timeoutMs = timeoutMs
    this.#onExpiry = onExpiry
  }

  get running(): boolean {
    return this.#armed
  }

  /** Starts the timer, or pushes its deadline to now + timeout when it runs. */
  restart(): void {
    if (this.timeoutMs === Infinity) return
    this.#deadline = now() + this.timeoutMs
    this.#armed = true
    if (this.#timer === null && this.#check === null) this.#arm(this.timeoutMs)
  }

  /** Disarms the timer. The node timer, if any, stays scheduled (unref'd) and lapses when due. */
  stop(): void {
    this.#armed = false
    if (this.#check !== null) clearImmediate(this.#check)
    this.#check = null
  }

  /** Cancels the node timer too (the QP is going away). */
  dispose(): void {
    this.stop()
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  #arm(ms: number): void {
    const t = setTimeout(this.#fire, ms)
    // The device socket keeps the process alive while a QP has work; a timer alone does not.
    t.unref()
    this.#timer = t
  }

  #fired(): void {
    this.#timer = null
    if (!this.#armed) return
    const left = this.#deadline - now()
    if (left > 0.5) {
      this.#arm(left)
      return
    }
    this.#check = setImmediate(this.#checked)
  }

  #afterPoll(): void {
    this.#check = null
    if (!this.#armed) return
    const left = this.#deadline - now()
    if (left > 0.5) {
      this.#arm(left)
      return
    }
    this.#armed = false
    this.#onExpiry()
  }
}
