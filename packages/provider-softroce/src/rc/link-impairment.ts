/**
 * An in-process impairment layer for tests: a hook in a device's send and
 * receive paths that loses, duplicates, reorders, delays or corrupts packets
 * with a seeded PRNG (so a failing run can be replayed), or blackholes the
 * device entirely ("the host stopped answering").
 */
import { seededRandom } from '@rdma-session/provider-interface'

export interface ImpairmentOptions {
  /** Chance a sent packet is lost, 0–1. */
  readonly loss?: number
  /** Chance a sent packet is sent twice. */
  readonly duplicate?: number
  /** Chance a sent packet is held back and sent after the next one (or after `reorderMs`). */
  readonly reorder?: number
  /** Chance one byte of a sent packet is flipped (the receiver's ICRC check drops it). */
  readonly corrupt?: number
  /** Extra delay of every sent packet in ms (0 = none). */
  readonly delayMs?: number
  /** Longest a reordered packet is held, in ms (default 2). */
  readonly reorderMs?: number
  /** PRNG seed (default 1). */
  readonly seed?: number
  /** Only packets for which this returns true are impaired (e.g. `(p) => p[0] === 0x12` for ATOMIC_ACKNOWLEDGE). */
  readonly match?: (packet: Buffer) => boolean
  /** Impair at most this many packets, then pass everything (default: no limit). */
  readonly limit?: number
}

export interface ImpairmentStats {
  lost: number
  duplicated: number
  reordered: number
  corrupted: number
  blackholed: number
}


export type PacketSink = (packet: Buffer) => void

export class LinkImpairment {
  readonly stats: ImpairmentStats = { lost: 0, duplicated: 0, reordered: 0, corrupted: 0, blackholed: 0 }
  /** Every packet in and out is lost. */
  blackhole = false
  readonly #o: Required<Omit<ImpairmentOptions, 'match'>> & { match: ((packet: Buffer) => boolean) | null }
  #impaired = 0
  readonly #random: () => number
  #held: { packet: Buffer; sink: PacketSink; timer: NodeJS.Timeout } | null = null

  constructor(options: ImpairmentOptions = {}) {
    this.#o = { loss: 0, duplicate: 0, reorder: 0, corrupt: 0, delayMs: 0, reorderMs: 2, seed: 1, limit: Infinity, match: null, ...options }
    this.#random = seededRandom(this.#o.seed)
  }

  get options(): Required<Omit<ImpairmentOptions, 'match'>> & { match: ((packet: Buffer) => boolean) | null } {
    return this.#o
  }

  /** Receive path: false drops the packet. */
  inbound(): boolean {
    if (!this.blackhole) return true
    this.stats.blackholed++
    return false
  }

  /** Send path: passes `packet` to `sink` zero, one or two times, now or later. */
  outbound(packet: Buffer, sink: PacketSink): void {
    if (this.blackhole) {
      this.stats.blackholed++
      return
    }
    const o = this.#o
    const r = this.#random
    if (this.#impaired >= o.limit || (o.match !== null && !o.match(packet))) {
      this.#deliver(packet, sink)
      this.#release()
      return
    }
    const before = this.stats.lost + this.stats.duplicated + this.stats.reordered + this.stats.corrupted
    try {
      this.#impair(packet, sink, o, r)
    } finally {
      if (this.stats.lost + this.stats.duplicated + this.stats.reordered + this.stats.corrupted > before) this.#impaired++
    }
  }

  #impair(packet: Buffer, sink: PacketSink, o: LinkImpairment['options'], r: () => number): void {
    if (o.loss > 0 && r() < o.loss) {
      this.stats.lost++
      return
    }
    let p = packet
    if (o.corrupt > 0 && r() < o.corrupt) {
      p = Buffer.from(packet)
      const at = Math.floor(r() * p.length)
      p[at] = (p[at]! ^ 0x5a) & 0xff
      this.stats.corrupted++
    }
    const copies = o.duplicate > 0 && r() < o.duplicate ? 2 : 1
    if (copies === 2) this.stats.duplicated++
    if (o.reorder > 0 && this.#held === null && r() < o.reorder) {
      this.stats.reordered++
      const held = { packet: p, sink, timer: setTimeout(() => this.#release(), o.reorderMs) }
      this.#held = held
      if (copies === 2) this.#deliver(p, sink)
      return
    }
    for (let i = 0; i < copies; i++) this.#deliver(p, sink)
    this.#release()
  }

  /** Sends anything held back (call before closing the device). */
  drain(): void {
    this.#release()
  }

  #release(): void {
    const h = this.#held
    if (h === null) return
    this.#held = null
    clearTimeout(h.timer)
    this.#deliver(h.packet, h.sink)
  }

  #deliver(p: Buffer, sink: PacketSink): void {
    if (this.#o.delayMs > 0) setTimeout(sink, this.#o.delayMs, p)
    else sink(p)
  }
}
