import { describe, expect, it } from 'vitest'
import { MemoryKeys, randomKey, randomQpn } from '../src/index.js'

interface Region {
  readonly lkey: number
  readonly rkey: number
  readonly name: string
}

describe('MemoryKeys', () => {
  it('gives non-zero, unique keys with lkey ≠ rkey and finds regions by either key', () => {
    const keys = new MemoryKeys<Region>()
    const regions: Region[] = []
    for (let i = 0; i < 2000; i++) {
      const lkey = keys.freshLkey()
      const rkey = keys.freshRkey(lkey)
      regions.push(keys.add({ lkey, rkey, name: `r${i}` }))
    }
    expect(keys.size).toBe(2000)
    expect(new Set(regions.map((r) => r.lkey)).size).toBe(2000)
    expect(new Set(regions.map((r) => r.rkey)).size).toBe(2000)
    for (const r of regions) {
      expect(r.lkey).not.toBe(0)
      expect(r.rkey).not.toBe(0)
      expect(r.lkey).not.toBe(r.rkey)
      expect(keys.byLkey(r.lkey)).toBe(r)
      expect(keys.byRkey(r.rkey)).toBe(r)
    }
    expect([...keys.values()]).toEqual(regions)
  })

  it('forgets a removed region; removing a stale region does not evict a newer one under the same key', () => {
    const keys = new MemoryKeys<Region>()
    const a = keys.add({ lkey: 5, rkey: 6, name: 'a' })
    keys.remove(a)
    expect(keys.byLkey(5)).toBeUndefined()
    expect(keys.byRkey(6)).toBeUndefined()
    expect(keys.size).toBe(0)
    const b = keys.add({ lkey: 5, rkey: 6, name: 'b' })
    keys.remove(a)
    expect(keys.byLkey(5)).toBe(b)
    expect(keys.byRkey(6)).toBe(b)
  })
})

describe('unpredictable ids', () => {
  it('keys are 32-bit and never 0; QPNs are 24-bit and never 0, 1 or 0xffffff', () => {
    const seen = new Set<number>()
    for (let i = 0; i < 5000; i++) {
      const k = randomKey()
      expect(Number.isInteger(k) && k > 0 && k <= 0xffffffff).toBe(true)
      seen.add(k)
      const q = randomQpn()
      expect(q > 1 && q < 0xffffff).toBe(true)
    }
    expect(seen.size, 'no repeats among 5000 random 32-bit keys (collision odds ~0.3%)').toBeGreaterThan(4990)
  })
})
