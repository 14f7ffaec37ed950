/**
 * The WRs a QP has posted and not yet seen complete, in post order (one FIFO
 * for the send queue, one for the receive queue). A completion settles its
 * WR and, on the send queue, every unsignaled WR posted before it.
 */
import type { CompletionOpcode } from './constants.js'
import type { WorkCompletion } from './spi.js'
import { FifoQueue } from './provider-kit/fifo-queue.js'

export interface PendingWr {
  readonly id: number
  readonly userWrId: number
  readonly opcode: CompletionOpcode
  readonly signaled: boolean
  /** Bytes the WR moves (payload for sends/writes/reads, 8 for atomics). */
  readonly bytes: number
  /** performance.now() at post time, for latency. */
  readonly postedAt: number
  resolve: ((wc: WorkCompletion) => void) | null
  reject: ((err: Error) => void) | null
}

export class WorkTracker {
  readonly #items = new FifoQueue<PendingWr>()

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

  /**
   * Removes and returns the WRs up to and including the one with `id`, oldest
   * first; empty if no such WR is pending (a stray completion).
   */
  takeThrough(id: number): PendingWr[] {
    const n = this.#items.length
    for (let i = 0; i < n; i++) if (this.#items.at(i)!.id === id) return this.#items.take(i + 1)
    return []
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
