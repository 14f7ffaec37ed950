/**
 * The WRs a QP has posted and not yet seen complete, in post order (one FIFO
 * for the send queue, one for the receive queue). A completion settles its
 * WR and, on the send queue, every unsignaled WR posted before it.
 */
import type { CompletionOpcode } from './constants.js'
import type { WorkCompletion } from './spi.js'

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
  #items: (PendingWr | undefined)[] = []
  #head = 0

  get size(): number {
    return this.#items.length - this.#head
  }

  push(wr: PendingWr): void {
    this.#items.push(wr)
  }

  /** Removes and returns the oldest WR if its id is `id` (the common case); otherwise undefined. */
  takeHead(id: number): PendingWr | undefined {
    const head = this.#items[this.#head]
    if (head === undefined || head.id !== id) return undefined
    this.#items[this.#head++] = undefined
    this.#compact()
    return head
  }

  /**
   * Removes and returns the WRs up to and including the one with `id`, oldest
   * first; empty if no such WR is pending (a stray completion).
   */
  takeThrough(id: number): PendingWr[] {
    let end = -1
    for (let i = this.#head; i < this.#items.length; i++) {
      if (this.#items[i]!.id === id) {
        end = i
        break
      }
    }
    if (end < 0) return []
    const taken = this.#items.slice(this.#head, end + 1) as PendingWr[]
    this.#head = end + 1
    this.#compact()
    return taken
  }

  /** True when some pending WR matches (used at close only). */
  some(pred: (wr: PendingWr) => boolean): boolean {
    for (let i = this.#head; i < this.#items.length; i++) if (pred(this.#items[i]!)) return true
    return false
  }

  /** Removes every pending WR. */
  takeAll(): PendingWr[] {
    const taken = this.#items.slice(this.#head) as PendingWr[]
    this.#items = []
    this.#head = 0
    return taken
  }

  #compact(): void {
    if (this.#head === this.#items.length) {
      this.#items = []
      this.#head = 0
    } else if (this.#head > 64 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
  }
}
