/**
 * Registered memory of one host: each region keeps the caller's Uint8Array and
 * gets unpredictable lkey/rkey and a fake, 4 KiB-aligned virtual address that
 * work requests name it by. RDMA ops read and write the registered bytes directly.
 */
import type { ProviderMr } from '@rdma-session/provider-interface'
import { MemoryKeys, random24 } from '@rdma-session/rc-engine'

const PAGE = 4096

/** The owner a region reports its deregistration to (its PD). */
export interface MemoryOwner {
  forgetMr(mr: MockMr): void
}

export class MockMr implements ProviderMr {
  /** The registered bytes; null once deregistered. */
  bytes: Uint8Array | null

  constructor(
    readonly owner: MemoryOwner,
    readonly table: MemoryTable,
    bytes: Uint8Array,
    readonly access: number,
    readonly lkey: number,
    readonly rkey: number,
    readonly addr: number,
  ) {
    this.bytes = bytes
  }

  get length(): number {
    return this.bytes?.length ?? 0
  }

  deregister(): void {
    if (this.bytes === null) return
    this.bytes = null
    this.table.remove(this)
    this.owner.forgetMr(this)
  }

  /**
   * The bytes at [addr, addr + length) as a view, or null when the range is not
   * inside this region or the region lacks any of the `access` bits.
   */
  view(addr: number, length: number, access: number): Uint8Array | null {
    const bytes = this.bytes
    if (bytes === null || (this.access & access) !== access) return null
    const offset = addr - this.addr
    if (!(offset >= 0 && length >= 0 && offset + length <= bytes.length && Number.isInteger(offset))) return null
    return bytes.subarray(offset, offset + length)
  }
}

/** The keys (the engine's MemoryKeys index) and virtual addresses of one host's regions. */
export class MemoryTable extends MemoryKeys<MockMr> {
  /** Next free virtual address; each host starts somewhere unpredictable above 2^44. */
  #nextAddr = 2 ** 44 + random24() * PAGE

  register(owner: MemoryOwner, bytes: Uint8Array, access: number): MockMr {
    const lkey = this.freshLkey()
    const rkey = this.freshRkey(lkey)
    const addr = this.#nextAddr
    // One unmapped guard page between regions, so ranges just past a region's end name no region.
    this.#nextAddr += (Math.ceil(bytes.length / PAGE) + 1) * PAGE
    return this.add(new MockMr(owner, this, bytes, access, lkey, rkey, addr))
  }
}
