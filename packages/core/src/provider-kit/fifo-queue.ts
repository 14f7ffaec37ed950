/**
 * A first-in first-out queue for the hot paths of providers written in JavaScript: an array with
 * a moving head (Array.prototype.shift moves every element). The consumed part is dropped when the
 * queue empties, or once the head is past COMPACT_AFTER items and half the array (amortized O(1)),
 * so a queue that never quite empties (receives posted ahead) does not grow forever.
 */
const COMPACT_AFTER = 256

export class FifoQueue<T> {
  #items: (T | undefined)[] = []
  #head = 0

  get length(): number {
    return this.#items.length - this.#head
  }

  get empty(): boolean {
    return this.#head === this.#items.length
  }

  push(item: T): void {
    this.#items.push(item)
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.#items[this.#head]
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head++] = undefined
    this.#compact()
    return item
  }

  /** Removes and returns up to `n` of the oldest items, oldest first. */
  take(n: number): T[] {
    const count = Math.min(n, this.#items.length - this.#head)
    if (!(count > 0)) return []
    const out = this.#items.slice(this.#head, this.#head + count) as T[]
    this.#items.fill(undefined, this.#head, this.#head + count)
    this.#head += count
    this.#compact()
    return out
  }

  /** Removes and returns every item, oldest first. */
  drain(): T[] {
    const out = this.#items.slice(this.#head) as T[]
    this.clear()
    return out
  }

  clear(): void {
    this.#items = []
    this.#head = 0
  }

  #compact(): void {
    if (this.#head === this.#items.length) {
      this.#items = []
      this.#head = 0
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
  }
}
