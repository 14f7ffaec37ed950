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

  it('keeps its order across wrap-arounds and growth while it never empties (items posted ahead)', () => {
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

  it('grows past its first capacity in the middle of a wrap-around, keeping the order; at() reads in place', () => {
    const q = new FifoQueue<number>()
    let next = 0
    let expected = 0
    for (let i = 0; i < 10; i++) q.push(next++)
    for (let i = 0; i < 7; i++) expect(q.shift()).toBe(expected++) // head moved: the next pushes wrap around
    for (let i = 0; i < 100; i++) q.push(next++) // grows from 16 while wrapped
    expect(q.length).toBe(103)
    expect(q.at(0)).toBe(expected)
    expect(q.at(102)).toBe(next - 1)
    expect(q.at(103)).toBeUndefined()
    expect(q.at(-1)).toBeUndefined()
    expect(q.take(2.7)).toEqual([expected, expected + 1])
    expected += 2
    expect(q.drain()).toEqual(Array.from({ length: 101 }, (_, i) => expected + i))
  })

  it('a queue that emptied after growing large goes back to its first capacity, and works on', () => {
    const q = new FifoQueue<number>()
    for (let i = 0; i < 5000; i++) q.push(i)
    expect(q.take(5000)).toHaveLength(5000)
    expect(q.empty).toBe(true)
    for (let i = 0; i < 40; i++) q.push(i)
    expect(q.drain()).toEqual(Array.from({ length: 40 }, (_, i) => i))
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
