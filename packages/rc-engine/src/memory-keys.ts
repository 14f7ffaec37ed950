/**
 * The lkey and rkey index of one device's memory regions: every region gets an unpredictable
 * lkey and rkey (never 0, unique among the live regions, lkey ≠ rkey), so a peer cannot guess
 * a key; lookups by either key are one map read. Providers keep their own region objects
 * (what a key grants: bounds, access, PD) and put them here.
 */
import { randomKey } from './unpredictable-ids.js'

export interface KeyedRegion {
  readonly lkey: number
  readonly rkey: number
}

export class MemoryKeys<R extends KeyedRegion> {
  readonly #byLkey = new Map<number, R>()
  readonly #byRkey = new Map<number, R>()

  /** An lkey no live region has. */
  freshLkey(): number {
    let lkey = randomKey()
    while (this.#byLkey.has(lkey)) lkey = randomKey()
    return lkey
  }

  /** An rkey no live region has, other than `lkey`. */
  freshRkey(lkey: number): number {
    let rkey = randomKey()
    while (this.#byRkey.has(rkey) || rkey === lkey) rkey = randomKey()
    return rkey
  }

  add(region: R): R {
    this.#byLkey.set(region.lkey, region)
    this.#byRkey.set(region.rkey, region)
    return region
  }

  remove(region: R): void {
    if (this.#byLkey.get(region.lkey) === region) this.#byLkey.delete(region.lkey)
    if (this.#byRkey.get(region.rkey) === region) this.#byRkey.delete(region.rkey)
  }

  byLkey(lkey: number): R | undefined {
    return this.#byLkey.get(lkey)
  }

  byRkey(rkey: number): R | undefined {
    return this.#byRkey.get(rkey)
  }

  get size(): number {
    return this.#byLkey.size
  }

  values(): IterableIterator<R> {
    return this.#byLkey.values()
  }
}
