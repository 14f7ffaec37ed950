/**
 * An RC responder's saved RDMA READ and atomic requests (IB "responder resources", as many as the
 * QP's max_dest_rd_atomic; kernel rxe keeps the same ring), for providers to share. A duplicate
 * READ is re-executed only when it names part of a saved READ consistently — the same rkey, a PSN
 * inside the saved request, the address that PSN's response packet starts at, a range inside the
 * original — and at most once at a time; a duplicate atomic is answered from its saved result and
 * never executed again. The provider drops anything else and counts it: a forged duplicate cannot
 * make the responder send more than the requests it really took.
 */

/** a - b in the 24-bit PSN space, from -2^23 to 2^23 - 1. */
function psnDiff(a: number, b: number): number {
  return ((a - b) << 8) >> 8
}

interface SavedRead {
  readonly kind: 'read'
  readonly psn: number
  readonly packets: number
  readonly rkey: number
  readonly va: number
  readonly length: number
  /** A re-execution of this READ is queued and not fully sent yet. */
  replaying: boolean
}

interface SavedAtomic {
  readonly kind: 'atomic'
  readonly psn: number
  readonly original: bigint
}

type Saved = SavedRead | SavedAtomic

/** A duplicate READ that matched: the handle to clear when its responses are sent. */
export interface ReadReplay {
  replaying: boolean
}

export class ResponderResources {
  readonly #slots: (Saved | undefined)[]
  #next = 0

  /** `size`: the QP's max_dest_rd_atomic (at least one slot, so a lone READ can be retried). */
  constructor(size: number) {
    this.#slots = new Array<Saved | undefined>(Math.max(1, size))
  }

  saveRead(psn: number, packets: number, rkey: number, va: number, length: number): void {
    this.#put({ kind: 'read', psn, packets, rkey, va, length, replaying: false })
  }

  saveAtomic(psn: number, original: bigint): void {
    this.#put({ kind: 'atomic', psn, original })
  }

  /**
   * The saved READ a duplicate READ request re-executes part of, or null when it matches none
   * (or a re-execution of it is still being sent). The caller marks the returned handle
   * `replaying` while the responses are queued.
   */
  matchRead(psn: number, rkey: number, va: number, length: number, pmtu: number): ReadReplay | null {
    for (const s of this.#slots) {
      if (s === undefined || s.kind !== 'read' || s.rkey !== rkey) continue
      const k = psnDiff(psn, s.psn)
      if (k < 0 || k >= s.packets) continue
      const offset = k * pmtu
      if (va !== s.va + offset || length > s.length - offset || (length === 0 && s.length !== 0)) continue
      return s.replaying ? null : s
    }
    return null
  }

  /** The original value the atomic at `psn` returned, or undefined if it is not saved. */
  atomicResult(psn: number): bigint | undefined {
    for (const s of this.#slots) if (s !== undefined && s.kind === 'atomic' && s.psn === psn) return s.original
    return undefined
  }

  #put(s: Saved): void {
    this.#slots[this.#next] = s
    this.#next = (this.#next + 1) % this.#slots.length
  }
}
