/**
 * The responder's out-of-order store for selective repeat: request packets that arrived after a
 * gap, within a bounded window of PSNs past the expected one, held (payload copied: the datagram
 * is a view into a receive slab) until the gap fills, then handed back in PSN order to be
 * executed exactly as if they had arrived in order. Memory is bounded by the window: one buffer
 * of at most a path MTU per slot (`capacity` slots), each made on first use and reused.
 */
import type { RocePacket } from '../wire/packet.js'
import { psnAdd, psnDiff } from '@rdma-session/rc-engine'
import { MAX_SACK_WORDS } from '../wire/sack.js'

export type HoldResult = 'held' | 'duplicate' | 'overflow'

export class ReorderBuffer {
  /** Slots (a power of two); PSN p lives in slot p & mask. */
  readonly capacity: number
  readonly #mask: number
  /** Allocated at the first packet held: a QP whose packets arrive in order holds none of it. */
  #pkts: (RocePacket | null)[] | null = null
  #bufs: (Uint8Array | null)[] | null = null
  #held = 0
  /** The PSN of the highest held packet (meaningful while one is held). */
  #highestPsn = 0
  readonly #bitmap: Uint32Array

  /** `packets`: the window in packets (rounded up to a power of two, at most 32 * MAX_SACK_WORDS). */
  constructor(packets: number) {
    const cap = Math.min(32 * MAX_SACK_WORDS, 2 ** Math.ceil(Math.log2(Math.max(2, packets))))
    this.capacity = cap
    this.#mask = cap - 1
    this.#bitmap = new Uint32Array(MAX_SACK_WORDS)
  }

  /** Packets held now. */
  get held(): number {
    return this.#held
  }

  /** Offset of the highest held packet from the expected PSN `epsn`; 0 when none is held. */
  highest(epsn: number): number {
    return this.#held === 0 ? 0 : Math.max(0, psnDiff(this.#highestPsn, epsn))
  }

  /**
   * Holds `pkt`, `offset` (> 0) PSNs past the expected PSN: 'overflow' when that is beyond
   * the window, 'duplicate' when that PSN is held already.
   */
  hold(pkt: RocePacket, offset: number): HoldResult {
    if (offset >= this.capacity) return 'overflow'
    const i = pkt.bth.psn & this.#mask
    const pkts = (this.#pkts ??= new Array<RocePacket | null>(this.capacity).fill(null))
    const bufs = (this.#bufs ??= new Array<Uint8Array | null>(this.capacity).fill(null))
    if (pkts[i] !== null) return 'duplicate'
    const len = pkt.payload.length
    if (len > 0) {
      let buf = bufs[i] ?? null
      if (buf === null || buf.length < len) {
        buf = new Uint8Array(len)
        bufs[i] = buf
      }
      buf.set(pkt.payload)
      pkt.payload = buf.subarray(0, len)
    }
    pkts[i] = pkt
    if (this.#held++ === 0 || psnDiff(pkt.bth.psn, this.#highestPsn) > 0) this.#highestPsn = pkt.bth.psn
    return 'held'
  }

  /** Takes the packet held for `psn` (the new expected PSN), or null. */
  take(psn: number): RocePacket | null {
    const pkts = this.#pkts
    if (pkts === null) return null
    const i = psn & this.#mask
    const pkt = pkts[i] ?? null
    if (pkt === null || pkt.bth.psn !== psn) return null
    pkts[i] = null
    this.#held--
    return pkt
  }

  /** Drops every held packet (the QP stopped, or a replayed packet did not execute). */
  clear(): void {
    this.#pkts?.fill(null)
    this.#held = 0
  }

  /**
   * The SACK bitmap for expected PSN `epsn`: bit k set when PSN epsn + 1 + k is held, up to the
   * highest held packet. Returns the number of words (at least 1), the bitmap in `bitmap`.
   */
  sackBitmap(epsn: number): { bitmap: Uint32Array; words: number } {
    const bm = this.#bitmap
    const top = this.highest(epsn)
    const words = Math.max(1, Math.ceil(top / 32))
    bm.fill(0, 0, words)
    for (let off = 1; off <= top; off++) {
      const p = psnAdd(epsn, off)
      const pkt = this.#pkts?.[p & this.#mask]
      if (pkt !== null && pkt !== undefined && psnDiff(pkt.bth.psn, p) === 0) {
        const k = off - 1
        bm[k >>> 5] = bm[k >>> 5]! | (1 << (k & 31))
      }
    }
    return { bitmap: bm, words }
  }
}
