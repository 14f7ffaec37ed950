/**
 * The part of an rdma_cm listener both connection managers share: established connections wait
 * in a queue until `accept()` takes them, and `close()` runs once.
 */

export abstract class CmListenerBase<C> {
  readonly #ready: C[] = []
  readonly #waiting: ((c: C) => void)[] = []
  #closed = false

  /** The next established connection. */
  accept(): Promise<C> {
    const c = this.#ready.shift()
    if (c !== undefined) return Promise.resolve(c)
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  /** @internal The manager hands over a connection that got established. */
  established(c: C): void {
    const w = this.#waiting.shift()
    if (w !== undefined) w(c)
    else this.#ready.push(c)
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Stops listening (what that means for requests on the way: the manager's `onClose`). Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.onClose()
  }

  /** Runs once, on the first close(). */
  protected abstract onClose(): void
}
