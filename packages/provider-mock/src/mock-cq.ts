/**
 * A completion queue. Completions are only ever added from fabric, timer or
 * flush callbacks (never inside a post call), and the notify callback runs in a
 * later macrotask (setImmediate), once per batch. Depth is enforced: a completion
 * that does not fit is lost, and every QP using the CQ goes to ERR with a
 * 'fatal' event (reason 'cq-overflow'), as a NIC does on CQ overrun.
 */
import { QpStateError, type ProviderCq, type WorkCompletion } from '@rdma-session/core'

/** What a CQ needs from a QP that uses it. */
export interface CompletionProducer {
  readonly qpn: number
  /** The CQ overflowed: the QP must go to ERR. */
  fatal(reason: string): void
}

/** What a CQ needs from its owner (the PD). */
export interface CqOwner {
  forgetCq(cq: MockCq): void
}

function notifyLater(cq: MockCq): void {
  cq.runNotify()
}

export class MockCq implements ProviderCq {
  /** Completions lost to overflow. */
  overflows = 0
  #wcs: WorkCompletion[] = []
  #head = 0
  #notify: (() => void) | null = null
  #notifyPending = false
  #producers: Set<CompletionProducer> | null = null
  #destroyed = false

  constructor(
    readonly owner: CqOwner,
    readonly depth: number,
  ) {}

  /** Completions ready to poll. */
  get count(): number {
    return this.#wcs.length - this.#head
  }

  get destroyed(): boolean {
    return this.#destroyed
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
    if (this.count > 0) this.#scheduleNotify()
  }

  destroy(): void {
    if (this.#destroyed) return
    if (this.#producers !== null && this.#producers.size > 0) {
      throw new QpStateError(`CQ still used by ${this.#producers.size} QP(s); destroy the QPs first`, { qps: this.#producers.size })
    }
    this.#destroyed = true
    this.#wcs = []
    this.#head = 0
    this.#notify = null
    this.owner.forgetCq(this)
  }

  /** @internal */
  attach(qp: CompletionProducer): void {
    ;(this.#producers ??= new Set()).add(qp)
  }

  /** @internal */
  detach(qp: CompletionProducer): void {
    this.#producers?.delete(qp)
  }

  /** @internal Adds a completion (from an async context only). */
  push(wc: WorkCompletion): void {
    if (this.#destroyed) return
    if (this.#wcs.length - this.#head >= this.depth) {
      this.overflows++
      for (const qp of this.#producers ?? []) qp.fatal('cq-overflow')
      return
    }
    this.#wcs.push(wc)
    if (!this.#notifyPending && this.#notify !== null) this.#scheduleNotify()
  }

  /** @internal */
  runNotify(): void {
    this.#notifyPending = false
    if (this.#notify !== null && this.count > 0) this.#notify()
  }

  #scheduleNotify(): void {
    if (this.#notifyPending) return
    this.#notifyPending = true
    setImmediate(notifyLater, this)
  }
}
