/**
 * The budget of a control-plane server for connections that have not finished the handshake
 * (in the manner of SSH's MaxStartups and nginx's per-address limits): a small total, a share per
 * source address, early random drop as the pool fills, and room made for a newcomer from a quiet
 * address by closing the oldest connection of the loudest one. Pure bookkeeping: the caller owns
 * the sockets, closes what this returns, and removes what finished or went away.
 */
import { InvalidArgumentError } from '../errors.js'
import { normalizeAddress } from './endpoint-binding.js'

/** Limits on unauthenticated connections (listen({ admission })). Authenticated connections never count against them. */
export interface AdmissionLimits {
  /** Most connections still in the handshake, over all source addresses. Default 128. */
  readonly maxPending?: number
  /** Most connections still in the handshake from one source address (IPv4 address, IPv6 /64). Default 16. */
  readonly maxPendingPerAddress?: number
  /** From this many pending connections on, a newcomer from an address that already has one pending may be dropped at random. Default maxPending / 2. */
  readonly earlyDropAt?: number
  /** The chance of that drop at earlyDropAt; it rises linearly to 1 at maxPending. Default 0.3. */
  readonly earlyDropRate?: number
}

export const DEFAULT_ADMISSION: Readonly<{ maxPending: number; maxPendingPerAddress: number; earlyDropRate: number }> = Object.freeze({ maxPending: 128, maxPendingPerAddress: 16, earlyDropRate: 0.3 })

/** Checks `limits` and fills in the defaults; throws ERR_INVALID_ARGUMENT naming the bad one. */
export function normalizeAdmission(limits: AdmissionLimits = {}): Required<AdmissionLimits> {
  const maxPending = limits.maxPending ?? DEFAULT_ADMISSION.maxPending
  const out = {
    maxPending,
    maxPendingPerAddress: limits.maxPendingPerAddress ?? Math.min(DEFAULT_ADMISSION.maxPendingPerAddress, maxPending),
    earlyDropAt: limits.earlyDropAt ?? Math.ceil(maxPending / 2),
    earlyDropRate: limits.earlyDropRate ?? DEFAULT_ADMISSION.earlyDropRate,
  }
  const bad = (name: string, what: string): never => {
    throw new InvalidArgumentError(`admission.${name} must be ${what}, got ${String(out[name as keyof typeof out])}`, { attribute: `admission.${name}` })
  }
  if (!Number.isInteger(out.maxPending) || out.maxPending < 1) bad('maxPending', 'a positive integer')
  if (!Number.isInteger(out.maxPendingPerAddress) || out.maxPendingPerAddress < 1 || out.maxPendingPerAddress > maxPending) bad('maxPendingPerAddress', `an integer from 1 to maxPending (${maxPending})`)
  if (!Number.isInteger(out.earlyDropAt) || out.earlyDropAt < 0 || out.earlyDropAt > maxPending) bad('earlyDropAt', `an integer from 0 to maxPending (${maxPending}; maxPending turns early drop off)`)
  if (typeof out.earlyDropRate !== 'number' || !(out.earlyDropRate >= 0 && out.earlyDropRate <= 1)) bad('earlyDropRate', 'a number from 0 to 1')
  return Object.freeze(out)
}

/** What admit() decided: refused (early drop), or admitted once the caller closes `evict` (pending connections that made room). */
export type AdmissionDecision<T> = { readonly admitted: false; readonly reason: 'early-drop' } | { readonly admitted: true; readonly evict: readonly T[] }

export class AdmissionPool<T> {
  readonly limits: Required<AdmissionLimits>
  readonly #random: () => number
  /** Pending connections by source key, oldest first. */
  readonly #byKey = new Map<string, T[]>()
  readonly #keyOf = new Map<T, string>()

  /** `random` in [0, 1): a seeded one makes early drop replayable in tests. */
  constructor(limits: AdmissionLimits = {}, random: () => number = Math.random) {
    this.limits = normalizeAdmission(limits)
    this.#random = random
  }

  get size(): number {
    return this.#keyOf.size
  }

  /** Pending connections from `key`. */
  pendingFrom(key: string): number {
    return this.#byKey.get(key)?.length ?? 0
  }

  /**
   * Decides on a newcomer from `key`. A newcomer from an address with nothing pending is always
   * admitted; one from an address with connections pending is dropped at random once the pool is
   * past earlyDropAt (certainly at maxPending). When the address or the pool is full, the oldest
   * pending connection of the address holding the most (the newcomer's own, at its limit or on a
   * tie) is returned for closing.
   */
  admit(key: string, item: T): AdmissionDecision<T> {
    if (this.#keyOf.has(item)) throw new Error('this connection is already pending')
    const mine = this.pendingFrom(key)
    if (mine > 0 && this.#dropsEarly()) return { admitted: false, reason: 'early-drop' }
    const evict: T[] = []
    if (mine >= this.limits.maxPendingPerAddress) evict.push(this.#oldest(key))
    else if (this.size >= this.limits.maxPending) evict.push(this.#oldest(this.#loudest(key)))
    for (const e of evict) this.remove(e)
    let list = this.#byKey.get(key)
    if (list === undefined) this.#byKey.set(key, (list = []))
    list.push(item)
    this.#keyOf.set(item, key)
    return { admitted: true, evict }
  }

  /** Takes `item` out of the pool (its handshake finished, failed, or its socket closed); false when it was not in it. */
  remove(item: T): boolean {
    const key = this.#keyOf.get(item)
    if (key === undefined) return false
    this.#keyOf.delete(item)
    const list = this.#byKey.get(key)!
    list.splice(list.indexOf(item), 1)
    if (list.length === 0) this.#byKey.delete(key)
    return true
  }

  #dropsEarly(): boolean {
    const { maxPending, earlyDropAt, earlyDropRate } = this.limits
    if (this.size < earlyDropAt || earlyDropAt >= maxPending) return false
    const p = earlyDropRate + ((1 - earlyDropRate) * (this.size - earlyDropAt)) / (maxPending - earlyDropAt)
    return this.#random() < p
  }

  /** The key holding the most pending connections; `own` when it ties. */
  #loudest(own: string): string {
    let best = own
    let most = this.pendingFrom(own)
    for (const [k, list] of this.#byKey) {
      if (list.length > most) {
        best = k
        most = list.length
      }
    }
    return best
  }

  #oldest(key: string): T {
    return this.#byKey.get(key)![0]!
  }
}

/**
 * The key a source address is budgeted under: an IPv4 address as itself, an IPv6 address by its
 * /64 (one host usually holds a whole /64), an IPv4-mapped IPv6 address as the IPv4 one. A Unix
 * socket's peers have no address: each connection gets its own key (`unique`), so there the pool
 * only bounds the total and makes room by closing the oldest.
 */
export function sourceKey(address: string | undefined, unique: () => string): string {
  const a = normalizeAddress(address)
  if (a === null) return `unix:${unique()}`
  if (!a.includes(':')) return a
  // RFC 5952 form (normalizeAddress): expand the one '::' to find the first four groups.
  const [head = '', tail = ''] = a.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = a.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left
  return `${groups.slice(0, 4).join(':')}::/64`
}
