/**
 * The regions a context exposes to its sessions' peers, by name. A sub-range of a registered
 * region is exposed under a registration of its own (MemoryRegion.subRegion), so the key the
 * peer gets reaches that range only; a whole region is exposed under its own key.
 */
import { InvalidArgumentError, OutOfBoundsError } from '../errors.js'
import type { MemoryRegion, RemoteRegion } from '../memory-region.js'

interface Exposure {
  /** What the peer gets. */
  readonly record: RemoteRegion
  /** The sub-range registration made for it; null when the region is exposed under its own key. */
  readonly key: MemoryRegion | null
}

const MAX_NAME = 256

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME) {
    throw new InvalidArgumentError(`an exposed region's name must be a string of 1 to ${MAX_NAME} characters`, { name: String(name) })
  }
}

export class ExposedRegions {
  readonly #find: (rkey: number) => MemoryRegion | undefined
  readonly #byName = new Map<string, Exposure>()
  /** Keys made for regions given to one session only (create({ expose })). */
  readonly #bySession = new Map<string, MemoryRegion[]>()

  /** `find` returns this context's registered region with an rkey, if any. */
  constructor(find: (rkey: number) => MemoryRegion | undefined) {
    this.#find = find
  }

  /** Exposes `region` as `name`; a previous exposure of that name is withdrawn (its sub-range key deregistered). */
  set(name: string, region: RemoteRegion): void {
    checkName(name)
    const exposure = this.#resolve(region)
    this.delete(name)
    this.#byName.set(name, exposure)
  }

  /** Withdraws an exposure; true if there was one. Sessions holding its sub-range key lose access. */
  delete(name: string): boolean {
    const old = this.#byName.get(name)
    if (old === undefined) return false
    this.#byName.delete(name)
    old.key?.deregister()
    return true
  }

  /** What peers of new sessions get: every exposure by name. */
  records(): Record<string, RemoteRegion> {
    const out: Record<string, RemoteRegion> = {}
    for (const [name, e] of this.#byName) out[name] = e.record
    return out
  }

  /** Resolves regions given to one session; the keys made for them are released by endSession(). */
  forSession(sessionId: string, regions: Readonly<Record<string, RemoteRegion>>): Record<string, RemoteRegion> {
    if (regions === null || typeof regions !== 'object') throw new InvalidArgumentError('expose takes an object of regions by name')
    const out: Record<string, RemoteRegion> = {}
    const keys: MemoryRegion[] = []
    try {
      for (const [name, region] of Object.entries(regions)) {
        checkName(name)
        const e = this.#resolve(region)
        if (e.key !== null) keys.push(e.key)
        out[name] = e.record
      }
    } catch (err) {
      for (const k of keys) k.deregister()
      throw err
    }
    if (keys.length > 0) this.#bySession.set(sessionId, keys)
    return out
  }

  /** Deregisters the keys made for a session's own regions. */
  endSession(sessionId: string): void {
    const keys = this.#bySession.get(sessionId)
    if (keys === undefined) return
    this.#bySession.delete(sessionId)
    for (const k of keys) k.deregister()
  }

  #resolve(region: RemoteRegion): Exposure {
    const r = region as Partial<RemoteRegion> | null
    if (r === null || typeof r !== 'object' || !Number.isSafeInteger(r.addr) || !Number.isSafeInteger(r.rkey) || !Number.isSafeInteger(r.length)) {
      throw new InvalidArgumentError('expose takes a region record { addr, rkey, length } from mr.region()')
    }
    const { addr, rkey, length } = r as RemoteRegion
    const mr = this.#find(rkey)
    if (mr === undefined) {
      throw new InvalidArgumentError(`rkey ${rkey} is not a memory region of this context: expose what mr.region() returns`, { rkey })
    }
    const offset = addr - mr.addr
    if (offset < 0 || length <= 0 || offset + length > mr.length) {
      throw new OutOfBoundsError(`[${addr}, ${addr + length}) is not a non-empty range of the region at ${mr.addr} of ${mr.length} bytes`, { addr, length, regionAddr: mr.addr, regionLength: mr.length })
    }
    if (offset === 0 && length === mr.length) return { record: { addr, rkey, length }, key: null }
    const key = mr.subRegion(offset, length)
    return { record: key.region(), key }
  }
}
