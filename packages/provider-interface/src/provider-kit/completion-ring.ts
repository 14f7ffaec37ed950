/**
 * For providers written in JavaScript: a completion queue that keeps the SPI's CQ rules.
 * Completions are added only from asynchronous contexts (socket, timer, flush callbacks),
 * never inside a post call; the notify callback runs in a later macrotask (setImmediate),
 * once per batch, or — for a completion added with `soon` from a receive callback — in a
 * microtask at the end of that callback (still never inside a post call). Depth is enforced:
 * a completion that does not fit is lost, and every QP using the CQ goes to ERR through its
 * `fatal('cq-overflow')`, as a NIC does on CQ overrun. A CQ with QPs attached cannot be destroyed.
 */
import { QpStateError } from '../errors.js'
import type { ProviderCq, WorkCompletion } from '../spi.js'
import { FifoQueue } from './fifo-queue.js'
import { microtaskRunner } from './microtask.js'

/** What a CQ needs from a QP that uses it. */
export interface CompletionProducer {
  readonly qpn: number
  /** The CQ overflowed: the QP must go to ERR. */
  fatal(reason: string): void
}

function notifyLater(cq: CompletionRing): void {
  cq.notifyNow()
}

export abstract class CompletionRing implements ProviderCq {
  /** Completions lost to overflow. */
  overflows = 0
  readonly #wcs = new FifoQueue<WorkCompletion>()
  #notify: (() => void) | null = null
  #notifyScheduled = false
  #soonScheduled = false
  readonly #notifySoon = (): void => {
    this.#soonScheduled = false
    if (this.#notify !== null && this.count > 0) this.#notify()
  }
  readonly #scheduleNotifySoon = microtaskRunner(this.#notifySoon)

  readonly #producers = new Set<CompletionProducer>()
  #destroyed = false

  constructor(readonly depth: number) {}

  /** Called once when the CQ is destroyed (the provider forgets it). */
  protected abstract onDestroyed(): void

  /** Completions ready to poll. */
  get count(): number {
    return this.#wcs.length
  }

  get destroyed(): boolean {
    return this.#destroyed
  }

  /** QPs using this CQ. */
  get producers(): number {
    return this.#producers.size
  }

  poll(max: number): WorkCompletion[] {
    return this.#wcs.take(max)
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
    this.#wcs.clear()
    this.#notify = null
    this.onDestroyed()
  }

  attach(qp: CompletionProducer): void {
    this.#producers.add(qp)
  }

  detach(qp: CompletionProducer): void {
    this.#producers.delete(qp)
  }

  /**
   * Adds a completion (from an asynchronous context only). Returns false when it was lost
   * (CQ destroyed, or overflow: the QPs using the CQ were told through `fatal`).
   * `soon`: added from a receive callback (never from a post call): notify in a microtask.
   */
  push(wc: WorkCompletion, soon = false): boolean {
    if (this.#destroyed) return false
    if (this.#wcs.length >= this.depth) {
      this.overflows++
      for (const qp of [...this.#producers]) qp.fatal('cq-overflow')
      return false
    }
    this.#wcs.push(wc)
    if (this.#notify === null) return true
    if (soon) {
      if (!this.#soonScheduled) {
        this.#soonScheduled = true
        this.#scheduleNotifySoon()
      }
    } else this.#schedule()
    return true
  }

  /** Runs the notify callback now if completions are waiting (used by the scheduled notify). */
  notifyNow(): void {
    this.#notifyScheduled = false
    if (this.#notify !== null && this.count > 0) this.#notify()
  }

  #schedule(): void {
    if (this.#notifyScheduled) return
    this.#notifyScheduled = true
    setImmediate(notifyLater, this)
  }
}
