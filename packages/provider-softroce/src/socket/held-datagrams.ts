/**
 * Datagrams of normal-priority QPs held back during a read batch (receive-side priority), in
 * arrival order. A datagram the native path read is a view into its receive slab, which the next
 * read overwrites: it is copied into a slab of this queue's own, reused from its start whenever
 * every held datagram has been handled. Holding back a bulk stream then allocates no buffer per
 * datagram (a 4 KiB Buffer each made a flooded receiver collect garbage every few milliseconds,
 * pauses a latency-class packet waited behind).
 */
import { FifoQueue } from '@rdma-session/provider-interface'
import { performance } from 'node:perf_hooks'
import type { DatagramHandler } from './native-datagram.js'

/** Bytes per copy slab: 256 datagrams of a 4096-byte MTU. When one fills, the next is a new one. */
const SLAB_BYTES = 1 << 20

export class HeldDatagrams {
  /** datagram, address, port, datagram, … */
  readonly #queue = new FifoQueue<Buffer | string | number>()
  #slab: Buffer | null = null
  #used = 0

  get empty(): boolean {
    return this.#queue.empty
  }

  /** Datagrams held. */
  get length(): number {
    return this.#queue.length / 3
  }

  /** Holds a datagram; `copy`: it is a view that the next read overwrites. */
  hold(datagram: Buffer, address: string, port: number, copy: boolean): void {
    const q = this.#queue
    q.push(copy ? this.#copy(datagram) : datagram)
    q.push(address)
    q.push(port)
  }

  /**
   * Hands held datagrams to `handle`, oldest first, until none is left or `untilMs`
   * (performance.now()) has passed (checked every 4 datagrams); returns whether some remain.
   */
  handle(handle: DatagramHandler, untilMs: number): boolean {
    const q = this.#queue
    let n = 0
    while (!q.empty) {
      const datagram = q.shift() as Buffer
      const address = q.shift() as string
      const port = q.shift() as number
      handle(datagram, address, port)
      if ((++n & 3) === 0 && performance.now() >= untilMs) break
    }
    if (!q.empty) return true
    // No view into the slab is left: the next copies start over at its beginning.
    this.#used = 0
    return false
  }

  clear(): void {
    this.#queue.clear()
    this.#slab = null
    this.#used = 0
  }

  #copy(datagram: Buffer): Buffer {
    const n = datagram.length
    let slab = this.#slab
    if (slab === null || this.#used + n > slab.length) {
      // Views into the previous slab keep it alive until they are handled.
      slab = this.#slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, n))
      this.#used = 0
    }
    const start = this.#used
    datagram.copy(slab, start)
    this.#used = start + ((n + 7) & ~7)
    return slab.subarray(start, start + n)
  }
}
