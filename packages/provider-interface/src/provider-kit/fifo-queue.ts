/**
 * A first-in first-out queue for the hot paths of providers written in JavaScript: a ring
 * buffer (Array.prototype.shift moves every element) whose capacity doubles when it is full.
 * A queue that empties and refills (a completion per round trip) allocates nothing; only
 * take() and drain() allocate, the array they return. The ring is allocated on the first push
 * (a QP has two queues that may stay empty); a queue that empties after growing past
 * SHRINK_ABOVE items gives its ring back.
 */
const FIRST_CAPACITY = 16
const SHRINK_ABOVE = 1024

export class FifoQueue<T> {
  #items: (T | undefined)[] = []
  #mask = 0
  #head = 0
  #count = 0

  get length(): number {
    return this.#count
  }

  get empty(): boolean {
    return this.#count === 0
  }

  push(item: T): void {
    if (this.#count === this.#items.length) this.#grow()
    this.#items[(this.#head + this.#count) & this.#mask] = item
    this.#count++
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.#count === 0 ? undefined : this.#items[this.#head]
  }

  /** The item `i` places behind the oldest (0: the oldest), left in place. */
  at(i: number): T | undefined {
    return i >= 0 && i < this.#count ? this.#items[(this.#head + i) & this.#mask] : undefined
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.#count === 0) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head] = undefined
    this.#head = (this.#head + 1) & this.#mask
    if (--this.#count === 0) this.#emptied()
    return item
  }

  /** Removes and returns up to `n` of the oldest items, oldest first. */
  take(n: number): T[] {
    const count = Math.min(Math.floor(n), this.#count)
    if (!(count > 0)) return []
    // Sized once: pushing into [] would allocate a backing store for 17 items first.
    const out = new Array<T>(count)
    const items = this.#items
    for (let i = 0; i < count; i++) {
      out[i] = items[this.#head] as T
      items[this.#head] = undefined
      this.#head = (this.#head + 1) & this.#mask
    }
    this.#count -= count
    if (this.#count === 0) this.#emptied()
    return out
  }

  /** Removes and returns every item, oldest first. */
  drain(): T[] {
    return this.take(this.#count)
  }

  clear(): void {
    this.#items = []
    this.#mask = 0
    this.#head = 0
    this.#count = 0
  }

  #emptied(): void {
    this.#head = 0
    if (this.#items.length > SHRINK_ABOVE) this.clear()
  }

  #grow(): void {
    const old = this.#items
    const capacity = Math.max(FIRST_CAPACITY, old.length * 2)
    const next = new Array<T | undefined>(capacity).fill(undefined)
    for (let i = 0; i < this.#count; i++) next[i] = old[(this.#head + i) & this.#mask]
    this.#items = next
    this.#mask = capacity - 1
    this.#head = 0
  }
}
