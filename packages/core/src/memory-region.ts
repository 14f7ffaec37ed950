/** Registered memory: a Buffer/ArrayBuffer/TypedArray pinned for RDMA, with its keys and slices. */
import { AccessFlag, accessBitsToNames, type AccessName } from './constants.js'
import { AccessError, ClosedError, InvalidArgumentError, OutOfBoundsError } from './errors.js'
import type { ProviderMr, Sge } from './spi.js'

/** What the peer needs to name a region in RDMA READ/WRITE/atomic ops. */
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

export class MemoryRegion {
  readonly bytes: Uint8Array
  #mr: ProviderMr | null
  readonly #onDeregister: (mr: MemoryRegion) => void

  constructor(memory: RegistrableMemory, mr: ProviderMr, onDeregister: (mr: MemoryRegion) => void) {
    this.bytes = toBytes(memory)
    this.#mr = mr
    this.#onDeregister = onDeregister
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

  /** The record to give a peer so it can RDMA READ/WRITE/atomic this range. */
  region(offset = 0, length = this.length - offset): RemoteRegion {
    checkRange(offset, length, this.length)
    const mr = this.#live
    return { addr: mr.addr + offset, rkey: mr.rkey, length }
  }

  deregister(): void {
    if (this.#mr === null) return
    this.#mr.deregister()
    this.#mr = null
    this.#onDeregister(this)
  }
}
