/**
 * The WRs a QP has posted and not yet seen complete, in post order (one FIFO
 * for the send queue, one for the receive queue).
 *
 * Providers complete each queue in post order, and an unsignaled send WR that
 * succeeds produces no completion. So a completion for a WR behind the oldest
 * one retires the unsignaled send WRs before it, which succeeded silently.
 * Any other WR before it (a signaled send WR, or any receive) should have
 * completed first: the provider broke its contract, and `take` says so rather
 * than pretend those WRs succeeded.
 */
import type { CompletionOpcode } from '@rdma-session/provider-interface'
import type { WorkCompletion } from '@rdma-session/provider-interface'
import { FifoQueue } from '@rdma-session/provider-interface'

/** A posted WR. Its owner may reuse the object for a later WR once it has settled (see QueuePair). */
export interface PendingWr {
  id: number
  userWrId: number
  opcode: CompletionOpcode
  signaled: boolean
  /** Bytes the WR moves (payload for sends/writes/reads, 8 for atomics). */
  bytes: number
  /** performance.now() at post time, for latency (promise WRs only). */
  postedAt: number
  resolve: ((wc: WorkCompletion) => void) | null
  reject: ((err: Error) => void) | null
}

/** What a completion for WR `id` retires. */
export type Taken =
  /** The WR, and the unsignaled send WRs before it (oldest first), which succeeded without a completion. */
  | { readonly kind: 'in-order'; readonly wr: PendingWr; readonly silent: readonly PendingWr[] }
  /** The WR came before WRs that had to complete first (`skipped`, oldest first, with `earlier`: every WR before it). */
  | { readonly kind: 'out-of-order'; readonly wr: PendingWr; readonly earlier: readonly PendingWr[]; readonly skipped: readonly PendingWr[] }
  /** No WR with that id is pending (completed already, or never posted). */
  | { readonly kind: 'stray' }

const STRAY: Taken = Object.freeze({ kind: 'stray' })

export class WorkTracker {
  readonly #items = new FifoQueue<PendingWr>()
  /** The receive queue: every receive completes, so none may be retired silently. */
  readonly #receives: boolean

  constructor(queue: 'send' | 'recv' = 'send') {
    this.#receives = queue === 'recv'
  }

  get size(): number {
    return this.#items.length
  }

  push(wr: PendingWr): void {
    this.#items.push(wr)
  }

  /** Removes and returns the oldest WR if its id is `id` (the common case); otherwise undefined. */
  takeHead(id: number): PendingWr | undefined {
    return this.#items.peek()?.id === id ? this.#items.shift() : undefined
  }

  /** Removes the WR with `id` and every WR before it, and says whether the provider was allowed to complete it now. */
  take(id: number): Taken {
    const n = this.#items.length
    let at = -1
    for (let i = 0; i < n; i++) {
      if (this.#items.at(i)!.id === id) {
        at = i
        break
      }
    }
    if (at < 0) return STRAY
    const earlier = this.#items.take(at + 1)
    const wr = earlier.pop()!
    const skipped = earlier.filter((p) => this.#receives || p.signaled)
    return skipped.length === 0 ? { kind: 'in-order', wr, silent: earlier } : { kind: 'out-of-order', wr, earlier, skipped }
  }

  /** True when some pending WR matches (used at close only). */
  some(pred: (wr: PendingWr) => boolean): boolean {
    const n = this.#items.length
    for (let i = 0; i < n; i++) if (pred(this.#items.at(i)!)) return true
    return false
  }

  /** Removes every pending WR. */
  takeAll(): PendingWr[] {
    return this.#items.drain()
  }
}
