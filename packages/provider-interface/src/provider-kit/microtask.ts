/**
 * Scheduling a fixed function in a microtask, cheaply. node's queueMicrotask() creates an
 * AsyncResource and a bound function per call (for async_hooks), which on a per-packet path
 * costs more than the work it schedules; a reaction on an already resolved promise runs at the
 * same point of the microtask queue. An exception `fn` throws is rethrown from a
 * queueMicrotask() callback, so it reaches 'uncaughtException' as it would have.
 */
const resolved = Promise.resolve()

/** Returns a function that, each time it is called, runs `fn` in a microtask. */
export function microtaskRunner(fn: () => void): () => void {
  const guarded = (): void => {
    try {
      fn()
    } catch (err) {
      queueMicrotask(() => {
        throw err
      })
    }
  }
  return () => void resolved.then(guarded)
}
