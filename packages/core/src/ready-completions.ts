/**
 * The completions a CompletionQueue holds for `poll()`, kept as the arrays the provider returned
 * them in (with the completions promises took removed): a batch moves from the provider to the
 * application without a copy or a push per completion when the application polls at least a
 * batch at a time.
 */
import { FifoQueue } from '@rdma-session/provider-interface'
import type { WorkCompletion } from '@rdma-session/provider-interface'

export class ReadyCompletions {
  readonly #batches = new FifoQueue<WorkCompletion[]>()
  /** Completions of the oldest batch already taken. */
  #offset = 0
  #count = 0

  get length(): number {
    return this.#count
  }

  get empty(): boolean {
    return this.#count === 0
  }

  /** Appends a batch; the array is kept (and later handed out), so the caller must not use it again. */
  add(batch: WorkCompletion[]): void {
    if (batch.length === 0) return
    this.#batches.push(batch)
    this.#count += batch.length
  }

  /** Removes and returns up to `max` of the oldest completions, oldest first. */
  take(max: number): WorkCompletion[] {
    const count = Math.min(Math.floor(max), this.#count)
    if (!(count > 0)) return []
    const head = this.#batches.peek()!
    if (this.#offset === 0 && head.length === count) {
      // The common case: the application takes the oldest batch whole.
      this.#batches.shift()
      this.#count -= count
      return head
    }
    const out = new Array<WorkCompletion>(count)
    for (let i = 0; i < count; ) {
      const batch = this.#batches.peek()!
      const n = Math.min(batch.length - this.#offset, count - i)
      for (let k = 0; k < n; k++) out[i + k] = batch[this.#offset + k]!
      i += n
      this.#offset += n
      if (this.#offset === batch.length) {
        this.#batches.shift()
        this.#offset = 0
      }
    }
    this.#count -= count
    return out
  }
}
