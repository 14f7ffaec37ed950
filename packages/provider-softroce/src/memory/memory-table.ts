/**
 * The device's registered memory: each region gets an unpredictable lkey and
 * rkey and a random 4 KiB-aligned virtual base address (the `addr` peers name
 * in RETH/AtomicETH). Lookups check key, protection domain, bounds and access.
 */
import { randomInt } from 'node:crypto'
import { AccessFlag, QpStateError, type ProviderMr } from '@rdma-session/provider-interface'
import { MemoryKeys } from '@rdma-session/rc-engine'

/** What the MR table needs to know about a protection domain. */
export interface PdHandle {
  readonly id: number
}

/** Virtual base addresses are random pages in [2^32, 2^52), so addr + length stays a safe integer. */
const MIN_PAGE = 2 ** 20
const MAX_PAGE = 2 ** 40

export class SoftRoceMr implements ProviderMr {
  readonly lkey: number
  readonly rkey: number
  readonly addr: number
  readonly length: number
  readonly access: number
  /** @internal The registered bytes. */
  readonly bytes: Uint8Array
  /** @internal */
  readonly pd: PdHandle
  #table: MemoryTable | null

  constructor(table: MemoryTable, pd: PdHandle, bytes: Uint8Array, access: number, lkey: number, rkey: number, addr: number) {
    this.#table = table
    this.pd = pd
    this.bytes = bytes
    this.length = bytes.length
    this.access = access
    this.lkey = lkey
    this.rkey = rkey
    this.addr = addr
  }

  get registered(): boolean {
    return this.#table !== null
  }

  deregister(): void {
    const t = this.#table
    if (t === null) return
    this.#table = null
    t.remove(this)
  }
}

export class MemoryTable {
  readonly #keys = new MemoryKeys<SoftRoceMr>()

  get size(): number {
    return this.#keys.size
  }

  register(pd: PdHandle, bytes: Uint8Array, access: number): SoftRoceMr {
    const lkey = this.#keys.freshLkey()
    const rkey = this.#keys.freshRkey(lkey)
    const addr = randomInt(MIN_PAGE, MAX_PAGE) * 4096
    // A plain Uint8Array view: its subarray() (one per SGE and per remote request) is a V8
    // builtin, while Buffer's goes through JS.
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    return this.#keys.add(new SoftRoceMr(this, pd, view, access, lkey, rkey, addr))
  }

  /** @internal */
  remove(mr: SoftRoceMr): void {
    this.#keys.remove(mr)
  }

  /** Regions of a PD still registered (a PD cannot be deallocated while it has some). */
  countFor(pd: PdHandle): number {
    let n = 0
    for (const mr of this.#keys.values()) if (mr.pd === pd) n++
    return n
  }

  /**
   * The local bytes an SGE names, or null when the lkey is unknown, belongs to
   * another PD, the range is outside the region, or `needWrite` and the region
   * lacks local-write.
   */
  local(pd: PdHandle, lkey: number, addr: number, length: number, needWrite: boolean): Uint8Array | null {
    const mr = this.#keys.byLkey(lkey)
    if (mr === undefined || mr.pd !== pd) return null
    if (needWrite && (mr.access & AccessFlag.LOCAL_WRITE) === 0) return null
    const off = addr - mr.addr
    if (!Number.isSafeInteger(off) || off < 0 || length < 0 || off + length > mr.length) return null
    return mr.bytes.subarray(off, off + length)
  }

  /**
   * The bytes a remote request names (rkey, virtual address, length) if the
   * region is in `pd` and grants `accessBit`; null for any violation.
   */
  remote(pd: PdHandle, rkey: number, va: number, length: number, accessBit: number): Uint8Array | null {
    const mr = this.#keys.byRkey(rkey)
    if (mr === undefined || mr.pd !== pd || (mr.access & accessBit) === 0) return null
    const off = va - mr.addr
    if (!Number.isSafeInteger(off) || off < 0 || length < 0 || off + length > mr.length) return null
    return mr.bytes.subarray(off, off + length)
  }
}

/** Thrown when a PD is deallocated while it still has children. */
export function busyPdError(what: string, n: number): QpStateError {
  return new QpStateError(`the protection domain still has ${n} ${what}; destroy them first`, { [what]: n })
}
