import { describe, expect, it } from 'vitest'
import { PSN_MASK, PSN_MODULUS, isPsn, psnAdd, psnDiff, psnLess, psnLessOrEqual } from '../src/index.js'

describe('PSN arithmetic', () => {
  it('adds with 24-bit wrap, including negative and large steps', () => {
    expect(PSN_MASK).toBe(0xffffff)
    expect(PSN_MODULUS).toBe(PSN_MASK + 1)
    expect(psnAdd(0xffffff, 1)).toBe(0)
    expect(psnAdd(0xfffffe, 5)).toBe(3)
    expect(psnAdd(0, -1)).toBe(0xffffff)
    expect(psnAdd(5, -10)).toBe(0xfffffb)
    expect(psnAdd(7, 0x1000000)).toBe(7)
    expect(psnAdd(7, 3 * 0x1000000 + 2)).toBe(9)
    expect(psnAdd(7, 2 ** 40 + 1)).toBe(8)
    expect(psnAdd(7, -(2 ** 40) - 1)).toBe(6)
  })

  it('diff is signed in [-2^23, 2^23) across the wrap', () => {
    expect(psnDiff(0, 0xffffff)).toBe(1)
    expect(psnDiff(0xffffff, 0)).toBe(-1)
    expect(psnDiff(10, 5)).toBe(5)
    expect(psnDiff(5, 10)).toBe(-5)
    expect(psnDiff(0x800000, 0)).toBe(-0x800000)
    expect(psnDiff(0x7fffff, 0)).toBe(0x7fffff)
    expect(psnDiff(0, 0x800000)).toBe(-0x800000)
    expect(psnDiff(0, 0x800001)).toBe(0x7fffff)
  })

  it('ordering and add/diff agree on random values', () => {
    // A fixed-seed LCG: the same values every run.
    let seed = 24
    const int = (n: number): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
      return Math.floor((seed / 2 ** 32) * n)
    }
    const bad: string[] = []
    for (let i = 0; i < 20000; i++) {
      const a = int(0x1000000)
      const n = int(0x1000000) - 0x800000 // [-2^23, 2^23)
      const b = psnAdd(a, n)
      const ok =
        isPsn(b) &&
        psnDiff(b, a) === n &&
        psnLess(a, b) === n > 0 &&
        psnLess(b, a) === n < 0 &&
        psnLessOrEqual(a, b) === n >= 0
      if (!ok) bad.push(`a=${a} n=${n} b=${b}`)
    }
    expect(bad).toEqual([])
    expect(psnLess(0xfffff0, 0x10)).toBe(true)
    expect(psnLess(0x10, 0xfffff0)).toBe(false)
    expect(isPsn(-1)).toBe(false)
    expect(isPsn(0x1000000)).toBe(false)
    expect(isPsn(1.5)).toBe(false)
  })
})
