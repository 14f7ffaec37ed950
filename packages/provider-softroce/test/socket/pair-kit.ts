/**
 * Setup the socket tests that move data through a device pair share: pairs closed after each test,
 * a condition awaited with a deadline, digests to compare buffers byte for byte, a checked WRITE.
 */
import { createHash } from 'node:crypto'
import { afterEach, expect } from 'vitest'
import { connect, openPair, pattern, register, type Pair } from '../rc/harness.js'

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

/**
 * Connects a QP pair at `mtu` and WRITEs `size` bytes (pattern `seed`) from A to B, checked byte for
 * byte; gives the QPs and both regions for more.
 */
export async function writeExact(pair: Pair, size: number, mtu: 1024 | 4096 = 4096, seed = size & 0xff): Promise<ReturnType<typeof connect> & { ma: ReturnType<typeof register>; mb: ReturnType<typeof register> }> {
  const qps = connect(pair, { mtu })
  const ma = register(pair.a, size)
  const mb = register(pair.b, size)
  const data = pattern(size, seed)
  ma.bytes.set(data)
  await qps.qa.write(ma.slice(0, size), mb.region(0, size))
  expect(sha(mb.bytes), 'the WRITE landed byte-exact').toBe(sha(data))
  return { ...qps, ma, mb }
}
