import { describe, expect, it } from 'vitest'
import { FifoQueue } from '../src/index.js'

describe('FifoQueue', () => {
  it('gives items back oldest first through shift, peek, take and drain', () => {
    const q = new FifoQueue<number>()
    expect(q.empty).toBe(true)
    expect(q.shift()).toBeUndefined()
    expect(q.take(3)).toEqual([])
    for (let i = 0; i < 10; i++) q.push(i)
    expect(q.length).toBe(10)
    expect(q.peek()).toBe(0)
    expect(q.shift()).toBe(0)
    expect(q.take(3)).toEqual([1, 2, 3])
    expect(q.take(0)).toEqual([])
    expect(q.take(Number.NaN)).toEqual([])
    expect(q.length).toBe(6)
    expect(q.drain()).toEqual([4, 5, 6, 7, 8, 9])
    expect(q.empty).toBe(true)
  })

  it('keeps its order across compactions while it never empties (items posted ahead)', () => {
    const q = new FifoQueue<number>()
    let next = 0
    let expected = 0
    for (let i = 0; i < 32; i++) q.push(next++)
    for (let round = 0; round < 10_000; round++) {
      expect(q.shift()).toBe(expected++)
      q.push(next++)
      if (round % 7 === 0) {
        for (const v of q.take(2)) expect(v).toBe(expected++)
        q.push(next++)
        q.push(next++)
      }
    }
    expect(q.length).toBe(32)
    expect(q.drain()).toEqual(Array.from({ length: 32 }, (_, i) => expected + i))
  })

  it('clear() empties it', () => {
    const q = new FifoQueue<string>()
    q.push('a')
    q.push('b')
    q.clear()
    expect(q.length).toBe(0)
    expect(q.peek()).toBeUndefined()
  })
})
