/** Registered memory: a Buffer/ArrayBuffer/TypedArray pinned for RDMA, with its keys and slices. */
import { AccessFlag, accessBitsToNames, type AccessName } from '@rdma-session/provider-interface'
import { AccessError, ClosedError, InvalidArgumentError, OutOfBoundsError } from './errors.js'
import type { ProviderMr, Sge } from '@rdma-session/provider-interface'

/**
 * What the peer needs to name a region in RDMA READ/WRITE/atomic ops. The rkey is the
 * registration's: it opens the whole registered region, whatever `addr` and `length` say
 * (a key for a sub-range only: MemoryRegion.subRegion, or sessions.expose of a sub-range).
 */
export interface RemoteRegion {
  readonly addr: number
  readonly rkey: number
  readonly length: number
}

/** A byte range of a registered region, usable as a local buffer of a work request. */
export class MemorySlice {
  constructor(
    readonly region: MemoryRegion,
    readonly offset: number,
    readonly length: number,
  ) {}

  /** The bytes of this slice (a view, not a copy). */
  get bytes(): Uint8Array {
    return this.region.bytes.subarray(this.offset, this.offset + this.length)
  }

  /** The scatter/gather entry for this slice. */
  toSge(): Sge {
    return { addr: this.region.addr + this.offset, length: this.length, lkey: this.region.lkey }
  }

  /** A sub-slice, relative to this slice. */
  slice(offset: number, length = this.length - offset): MemorySlice {
    checkRange(offset, length, this.length)
    return new MemorySlice(this.region, this.offset + offset, length)
  }
}

export type RegistrableMemory = ArrayBuffer | ArrayBufferView

function toBytes(memory: RegistrableMemory): Uint8Array {
  if (memory instanceof ArrayBuffer) return new Uint8Array(memory)
  if (ArrayBuffer.isView(memory)) return new Uint8Array(memory.buffer, memory.byteOffset, memory.byteLength)
  throw new InvalidArgumentError('registerMemory takes a Buffer, an ArrayBuffer or a TypedArray')
}

function checkRange(offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new OutOfBoundsError(`range [${offset}, ${offset + length}) is outside the region of ${size} bytes`, { offset, length, size })
  }
}

/** How a region registers more of its memory (sub-ranges with keys of their own) and says it is gone. */
export interface RegionRegistrar {
  register(bytes: Uint8Array, access: number): ProviderMr
  /** Called once, when `mr` is deregistered. */
  forget(mr: MemoryRegion): void
  /** Called when a sub-range registration is made, so its owner can track it too. */
  adopt(mr: MemoryRegion): void
}

export class MemoryRegion {
  readonly bytes: Uint8Array
  /** For a sub-range registration: the region it is part of, and where in it it starts. */
  readonly parent: MemoryRegion | null
  readonly parentOffset: number
  #mr: ProviderMr | null
  readonly #registrar: RegionRegistrar
  /** Sub-range registrations made from this region: they go when it goes. */
  readonly #subRegions = new Set<MemoryRegion>()

  constructor(memory: RegistrableMemory, mr: ProviderMr, registrar: RegionRegistrar, parent: { region: MemoryRegion; offset: number } | null = null) {
    this.bytes = toBytes(memory)
    this.#mr = mr
    this.#registrar = registrar
    this.parent = parent?.region ?? null
    this.parentOffset = parent?.offset ?? 0
  }

  static toBytes = toBytes

  /** Checks the verbs rule that remote write and atomic access need local write. */
  static checkAccess(bits: number): void {
    if ((bits & (AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_ATOMIC)) !== 0 && (bits & AccessFlag.LOCAL_WRITE) === 0) {
      throw new AccessError("'remote-write' and 'remote-atomic' need 'local-write' too (as in ibv_reg_mr)", { access: accessBitsToNames(bits) })
    }
  }

  get #live(): ProviderMr {
    if (this.#mr === null) throw new ClosedError('memory region')
    return this.#mr
  }
  get lkey(): number { return this.#live.lkey }
  get rkey(): number { return this.#live.rkey }
  get addr(): number { return this.#live.addr }
  get length(): number { return this.bytes.length }
  get access(): AccessName[] { return accessBitsToNames(this.#live.access) }
  get registered(): boolean { return this.#mr !== null }

  slice(offset = 0, length = this.length - offset): MemorySlice {
    checkRange(offset, length, this.length)
    return new MemorySlice(this, offset, length)
  }

  /**
   * The record to give a peer so it can RDMA READ/WRITE/atomic this range. Its rkey is this
   * region's: a peer holding it reaches the whole region, not only the range. To give a peer
   * a key for the range only, use subRegion(offset, length).region(), or sessions.expose,
   * which does that for a sub-range.
   */
  region(offset = 0, length = this.length - offset): RemoteRegion {
    checkRange(offset, length, this.length)
    const mr = this.#live
    return { addr: mr.addr + offset, rkey: mr.rkey, length }
  }

  /**
   * A separate registration of bytes [offset, offset + length) of this region, with the same
   * access and keys of its own: a peer given its rkey reaches that range only (a remote access
   * outside it fails with REM_ACCESS_ERR). It is deregistered with this region, or by itself.
   */
  subRegion(offset: number, length: number): MemoryRegion {
    checkRange(offset, length, this.length)
    if (length === 0) throw new InvalidArgumentError('a sub-region needs at least one byte', { offset, length })
    const mr = this.#live
    const bytes = this.bytes.subarray(offset, offset + length)
    const sub = new MemoryRegion(bytes, this.#registrar.register(bytes, mr.access), {
      register: (b, a) => this.#registrar.register(b, a),
      forget: (r) => {
        this.#subRegions.delete(r)
        this.#registrar.forget(r)
      },
      adopt: (r) => this.#registrar.adopt(r),
    }, { region: this, offset })
    this.#subRegions.add(sub)
    this.#registrar.adopt(sub)
    return sub
  }

  /** Deregisters this region and every sub-region made from it; idempotent. */
  deregister(): void {
    if (this.#mr === null) return
    for (const sub of [...this.#subRegions]) sub.deregister()
    this.#mr.deregister()
    this.#mr = null
    this.#registrar.forget(this)
  }
}
