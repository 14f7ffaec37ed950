import { describe, expect, it } from 'vitest'
import { seededRandom } from '../src/index.js'

describe('seededRandom', () => {
  it('is mulberry32: a fixed sequence for a seed', () => {
    const r = seededRandom(1)
    expect([r(), r(), r()]).toEqual([0.6270739405881613, 0.002735721180215478, 0.5274470399599522])
  })

  it('replays: the same seed gives the same sequence, another seed another', () => {
    const a = seededRandom(0x5eed)
    const b = seededRandom(0x5eed)
    const c = seededRandom(0x5eee)
    const xs = Array.from({ length: 100 }, () => a())
    expect(Array.from({ length: 100 }, () => b())).toEqual(xs)
    expect(Array.from({ length: 100 }, () => c())).not.toEqual(xs)
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true)
  })

  it('takes the seed as an unsigned 32-bit integer', () => {
    const a = seededRandom(-1)
    const b = seededRandom(0xffffffff)
    expect([a(), a()]).toEqual([b(), b()])
  })
})
