/**
 * Setup the socket tests that move data through a device pair share: pairs closed after each test,
 * a condition awaited with a deadline, and digests to compare buffers byte for byte.
 */
import { createHash } from 'node:crypto'
import { afterEach } from 'vitest'
import { openPair, type Pair } from '../rc/harness.js'

/**
 * Call at the top of a test file: `defer` queues a cleanup and `openTracked` opens a pair that is
 * closed, both after each test (in reverse order).
 */
export function trackedCleanup(): {
  defer: (c: () => Promise<void> | void) => void
  openTracked: (o?: Parameters<typeof openPair>[0], b?: Parameters<typeof openPair>[1]) => Promise<Pair>
} {
  let cleanup: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c()
    cleanup = []
  })
  const defer = (c: () => Promise<void> | void): void => void cleanup.push(c)
  const openTracked = async (o: Parameters<typeof openPair>[0] = {}, b: Parameters<typeof openPair>[1] = o): Promise<Pair> => {
    const p = await openPair(o, b)
    defer(() => p.close())
    return p
  }
  return { defer, openTracked }
}

export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** Waits until `ok()` holds, polling every 2 ms; throws naming `what` after `ms`. */
export async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}
