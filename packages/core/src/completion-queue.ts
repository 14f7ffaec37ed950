/**
 * Completion queue: drains the provider's CQ when it signals, hands each
 * completion to the QP that owns it (which settles the WR's promise), and
 * queues the rest for `poll()` and `for await … of cq`.
 */
import { ClosedError } from './errors.js'
import { ReadyCompletions } from './ready-completions.js'
import type { ProviderCq, WorkCompletion } from '@rdma-session/provider-interface'

/**
 * The part of a QP the CQ talks to. Returns the completion to surface to the user, or undefined
 * if a promise took it; `surface` queues more (completions core makes itself, see ProviderContractError).
 */
export interface CompletionOwner {
  readonly qpn: number
  takeCompletion(wc: WorkCompletion, surface: (wc: WorkCompletion) => void): WorkCompletion | undefined
}

const DRAIN_BATCH = 64

export class CompletionQueue {
  readonly provider: ProviderCq
  readonly #owners = new Map<number, CompletionOwner>()
  /** The owner of the last completion routed: most CQs serve one QP, and a run of completions one QP. */
  #lastOwner: CompletionOwner | null = null
  readonly #ready = new ReadyCompletions()
  /** Completions a QP made while one of the provider's was routed (see CompletionOwner), in order. */
  #surfaced: WorkCompletion[] | null = null
  readonly #surface = (wc: WorkCompletion): void => {
    ;(this.#surfaced ??= []).push(wc)
  }
  #wake: (() => void) | null = null
  #closed = false

  constructor(cq: ProviderCq) {
    this.provider = cq
    cq.setNotify(() => this.drain())
  }

  get depth(): number {
    return this.provider.depth
  }

  /** @internal Called by QueuePair when it starts or stops using this CQ. */
  attach(owner: CompletionOwner): void {
    this.#owners.set(owner.qpn, owner)
  }
  /** @internal */
  detach(owner: CompletionOwner): void {
    if (this.#owners.get(owner.qpn) === owner) this.#owners.delete(owner.qpn)
    if (this.#lastOwner === owner) this.#lastOwner = null
  }
  get attachedQps(): number {
    return this.#owners.size
  }

  /** Moves every ready completion from the provider to its owner or to the user queue. */
  drain(): void {
    if (this.#closed) return
    for (;;) {
      // The completions left for poll() are moved to the front of the provider's array (a new
      // one per poll, see the SPI), which then goes to the ready queue as it is.
      const batch = this.provider.poll(DRAIN_BATCH)
      const got = batch.length
      let kept = 0
      for (let i = 0; i < got; i++) {
        const wc = batch[i]!
        let owner = this.#lastOwner
        if (owner === null || owner.qpn !== wc.qpn) {
          owner = this.#owners.get(wc.qpn) ?? null
          if (owner !== null) this.#lastOwner = owner
        }
        const visible = owner === null ? wc : owner.takeCompletion(wc, this.#surface)
        if (this.#surfaced !== null) {
          // Rare (a provider broke the SPI): what came before goes first, then what the QP made.
          this.#ready.add(batch.slice(0, kept))
          kept = 0
          this.#ready.add(this.#surfaced)
          this.#surfaced = null
        }
        if (visible !== undefined) batch[kept++] = visible
      }
      if (kept < got) batch.length = kept
      this.#ready.add(batch)
      if (got < DRAIN_BATCH) break
    }
    if (!this.#ready.empty && this.#wake !== null) {
      const wake = this.#wake
      this.#wake = null
      wake()
    }
  }

  /**
   * Up to `max` completions of WRs posted with the raw `postSend`/`postRecv`
   * (WRs posted through promise methods settle their promise instead).
   */
  poll(max = 16): WorkCompletion[] {
    this.drain()
    return this.#ready.take(max)
  }

  /** Resolves once at least one completion is ready to poll. */
  waitReady(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('completion queue'))
    if (!this.#ready.empty) return Promise.resolve()
    return new Promise((resolve) => this.#addWaiter(resolve))
  }

  /** Wakes `resolve` with the next completions (or at close), with any waiter before it. */
  #addWaiter(resolve: () => void): void {
    const previous = this.#wake
    this.#wake =
      previous === null
        ? resolve
        : () => {
            previous()
            resolve()
          }
  }

  /** Yields completions as they arrive, until the CQ is closed. */
  async *[Symbol.asyncIterator](): AsyncGenerator<WorkCompletion, void, undefined> {
    for (;;) {
      const batch = this.poll(DRAIN_BATCH)
      for (const wc of batch) yield wc
      if (batch.length > 0) continue
      if (this.#closed) return
      await new Promise<void>((resolve) => this.#addWaiter(resolve))
    }
  }

  /** Destroys the CQ. QPs that use it must be closed first. */
  close(): void {
    if (this.#closed) return
    this.drain()
    this.#closed = true
    this.provider.destroy()
    const wake = this.#wake
    this.#wake = null
    wake?.()
  }
}
