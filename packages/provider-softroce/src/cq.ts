/**
 * A softroce completion queue. Completions are added only from socket, timer
 * or flush callbacks, never inside a post call, and the notify callback runs in
 * a later macrotask (setImmediate), once per batch. Completions of
 * latency-class QPs added while a received packet is handled (`soon`) are
 * notified in a microtask at the end of that socket callback instead: still
 * never inside a post call, but before the rest of the read batch and before
 * the send scheduler's next turn. A completion that does not
 * fit is lost and every QP using the CQ goes to ERR with a 'fatal' event
 * (reason 'cq-overflow'), as a NIC does on CQ overrun.
 */
import { QpStateError, type ProviderCq, type WorkCompletion } from '@rdma-session/core'

/** What a CQ needs from a QP that uses it. */
export interface CompletionProducer {
  readonly qpn: number
  /** The CQ overflowed: the QP must go to ERR. */
  fatal(reason: string): void
}

function runNotify(cq: SoftRoceCq): void {
  cq.notifyNow()
}

export class SoftRoceCq implements ProviderCq {
  readonly depth: number
  /** Completions lost to overflow. */
  overflows = 0
  #wcs: WorkCompletion[] = []
  #head = 0
  #notify: (() => void) | null = null
  #notifyScheduled = false
  #soonScheduled = false
  readonly #notifySoon = (): void => {
    this.#soonScheduled = false
    if (this.#notify !== null && this.count > 0) this.#notify()
  }
  readonly #producers = new Set<CompletionProducer>()
  #destroyed = false
  readonly #onDestroy: (cq: SoftRoceCq) => void

  constructor(depth: number, onDestroy: (cq: SoftRoceCq) => void) {
    this.depth = depth
    this.#onDestroy = onDestroy
  }

  /** Completions ready to poll. */
  get count(): number {
    return this.#wcs.length - this.#head
  }

  get destroyed(): boolean {
    return this.#destroyed
  }

  get producers(): number {
    return this.#producers.size
  }

  poll(max: number): WorkCompletion[] {
    const n = Math.min(Math.max(0, Math.floor(max)), this.#wcs.length - this.#head)
    if (n === 0) return []
    const out = this.#wcs.slice(this.#head, this.#head + n)
    this.#head += n
    if (this.#head === this.#wcs.length) {
      this.#wcs = []
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#wcs.length) {
      this.#wcs = this.#wcs.slice(this.#head)
      this.#head = 0
    }
    return out
  }

  setNotify(cb: () => void): void {
    this.#notify = cb
    if (this.count > 0) this.#schedule()
  }

  destroy(): void {
    if (this.#destroyed) return
    if (this.#producers.size > 0) {
      throw new QpStateError(`CQ still used by ${this.#producers.size} QP(s); destroy the QPs first`, { qps: this.#producers.size })
    }
    this.#destroyed = true
    this.#wcs = []
    this.#head = 0
    this.#notify = null
    this.#onDestroy(this)
  }

  /** @internal */
  attach(qp: CompletionProducer): void {
    this.#producers.add(qp)
  }

  /** @internal */
  detach(qp: CompletionProducer): void {
    this.#producers.delete(qp)
  }

  /**
   * @internal Adds a completion (from an asynchronous context only). Returns false on overflow.
   * `soon`: added from a socket callback (never from a post call): notify in a microtask.
   */
  push(wc: WorkCompletion, soon = false): boolean {
    if (this.#destroyed) return false
    if (this.#wcs.length - this.#head >= this.depth) {
      this.overflows++
      for (const qp of [...this.#producers]) qp.fatal('cq-overflow')
      return false
    }
    this.#wcs.push(wc)
    if (soon && this.#notify !== null) {
      if (!this.#soonScheduled) {
        this.#soonScheduled = true
        queueMicrotask(this.#notifySoon)
      }
    } else if (!this.#notifyScheduled && this.#notify !== null) this.#schedule()
    return true
  }

  /** @internal */
  notifyNow(): void {
    this.#notifyScheduled = false
    if (this.#notify !== null && this.count > 0) this.#notify()
  }

  #schedule(): void {
    if (this.#notifyScheduled) return
    this.#notifyScheduled = true
    setImmediate(runNotify, this)
  }
}
