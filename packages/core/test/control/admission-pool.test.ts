/** The pending-handshake budget on its own: per-address and total limits, who is closed to make room, early drop, source keys, checked limits. */
import { describe, expect, it } from 'vitest'
import { AdmissionPool, isRdmaError, normalizeAdmission, seededRandom, sourceKey } from '../../src/index.js'

const never = (): number => 1
const always = (): number => 0

/** Admits `n` items from `key`, named key#i; returns the decisions. */
function fill(pool: AdmissionPool<string>, key: string, n: number): ReturnType<AdmissionPool<string>['admit']>[] {
  return Array.from({ length: n }, (_, i) => pool.admit(key, `${key}#${pool.pendingFrom(key)}.${i}`))
}

describe('AdmissionPool', () => {
  it('an address at its limit recycles its own oldest pending connection, and never touches another address', () => {
    const pool = new AdmissionPool<string>({ maxPending: 10, maxPendingPerAddress: 3, earlyDropAt: 10 }, never)
    pool.admit('10.0.0.9', 'quiet')
    fill(pool, '10.0.0.1', 3)
    const d = pool.admit('10.0.0.1', 'fourth')
    expect(d).toEqual({ admitted: true, evict: ['10.0.0.1#0.0'] })
    expect(pool.pendingFrom('10.0.0.1')).toBe(3)
    expect(pool.pendingFrom('10.0.0.9')).toBe(1)
  })

  it('a full pool makes room for a newcomer from a quiet address by closing the oldest of the loudest address', () => {
    const pool = new AdmissionPool<string>({ maxPending: 6, maxPendingPerAddress: 4, earlyDropAt: 6 }, never)
    fill(pool, 'a', 2)
    fill(pool, 'b', 4)
    expect(pool.size).toBe(6)
    expect(pool.admit('legit', 'me')).toEqual({ admitted: true, evict: ['b#0.0'] })
    expect(pool.size).toBe(6)
    // The newcomer now holds one; a loud address cannot take it back (it is never the loudest).
    for (let i = 0; i < 20; i++) pool.admit('b', `b-again-${i}`)
    expect(pool.pendingFrom('legit')).toBe(1)
    expect(pool.size).toBe(6)
  })

  it('a newcomer tied with the loudest address closes its own oldest', () => {
    const pool = new AdmissionPool<string>({ maxPending: 4, maxPendingPerAddress: 4, earlyDropAt: 4 }, never)
    fill(pool, 'a', 2)
    fill(pool, 'b', 2)
    expect(pool.admit('b', 'b-new')).toEqual({ admitted: true, evict: ['b#0.0'] })
  })

  it('early drop: only newcomers from addresses with connections pending, only past earlyDropAt, certainly at maxPending', () => {
    const pool = new AdmissionPool<string>({ maxPending: 8, maxPendingPerAddress: 8, earlyDropAt: 4, earlyDropRate: 0.5 }, always)
    fill(pool, 'a', 4)
    expect(pool.admit('a', 'x')).toEqual({ admitted: false, reason: 'early-drop' })
    expect(pool.admit('fresh', 'y')).toEqual({ admitted: true, evict: [] })
    const below = new AdmissionPool<string>({ maxPending: 8, maxPendingPerAddress: 8, earlyDropAt: 4 }, always)
    expect(fill(below, 'a', 4).every((d) => d.admitted)).toBe(true)
    // At maxPending the chance is 1: even a draw just below 1 drops.
    const full = new AdmissionPool<string>({ maxPending: 4, maxPendingPerAddress: 4, earlyDropAt: 2, earlyDropRate: 0 }, () => 0.999)
    fill(full, 'a', 3)
    expect(full.admit('a', 'z').admitted).toBe(true)
    expect(full.admit('a', 'w')).toEqual({ admitted: false, reason: 'early-drop' })
  })

  it('the drop chance rises linearly from earlyDropRate to 1 (seeded draws)', () => {
    const rnd = seededRandom(7)
    const pool = new AdmissionPool<number>({ maxPending: 100, maxPendingPerAddress: 100, earlyDropAt: 0, earlyDropRate: 0.25 }, rnd)
    pool.admit('a', -1)
    let drops = 0
    for (let i = 0; i < 4000; i++) {
      const d = pool.admit('a', i)
      if (!d.admitted) drops++
      else pool.remove(i)
    }
    // One pending of 100: p = 0.25 + 0.75 * 1/100 = 0.2575.
    expect(drops / 4000).toBeGreaterThan(0.22)
    expect(drops / 4000).toBeLessThan(0.3)
  })

  it('remove() frees the slot once; unknown items are a no-op', () => {
    const pool = new AdmissionPool<string>({ maxPending: 2 })
    pool.admit('a', 'x')
    expect(pool.remove('x')).toBe(true)
    expect(pool.remove('x')).toBe(false)
    expect(pool.size).toBe(0)
    expect(pool.pendingFrom('a')).toBe(0)
  })

  it('source keys: IPv4 as itself, IPv4-mapped as IPv4, IPv6 by /64, each Unix connection its own', () => {
    let n = 0
    const unique = (): string => String(++n)
    expect(sourceKey('127.0.0.2', unique)).toBe('127.0.0.2')
    expect(sourceKey('::ffff:127.0.0.2', unique)).toBe('127.0.0.2')
    expect(sourceKey('2001:db8:1:2:aaaa::1', unique)).toBe('2001:db8:1:2::/64')
    expect(sourceKey('2001:db8:1:2::99', unique)).toBe('2001:db8:1:2::/64')
    expect(sourceKey('2001:db8::1', unique)).toBe('2001:db8:0:0::/64')
    expect(sourceKey('::1', unique)).toBe('0:0:0:0::/64')
    expect(sourceKey(undefined, unique)).not.toBe(sourceKey(undefined, unique))
  })

  it('limits are checked and defaulted', () => {
    expect(normalizeAdmission()).toEqual({ maxPending: 128, maxPendingPerAddress: 16, earlyDropAt: 64, earlyDropRate: 0.3 })
    expect(normalizeAdmission({ maxPending: 4 })).toEqual({ maxPending: 4, maxPendingPerAddress: 4, earlyDropAt: 2, earlyDropRate: 0.3 })
    for (const bad of [{ maxPending: 0 }, { maxPending: 1.5 }, { maxPendingPerAddress: 200 }, { earlyDropAt: 129 }, { earlyDropRate: 1.5 }, { earlyDropRate: Number.NaN }]) {
      let err: unknown
      try {
        normalizeAdmission(bad)
      } catch (e) {
        err = e
      }
      expect(isRdmaError(err) && err.code, JSON.stringify(bad)).toBe('ERR_INVALID_ARGUMENT')
    }
  })
})
