import { describe, expect, it } from 'vitest'
import { ReadyCompletions } from '../src/ready-completions.js'
import type { WorkCompletion } from '../src/index.js'

const wc = (wrId: number): WorkCompletion => ({ wrId, status: 'SUCCESS', opcode: 'SEND', byteLen: 0, qpn: 1 })
const batch = (...ids: number[]): WorkCompletion[] => ids.map(wc)
const ids = (wcs: WorkCompletion[]): number[] => wcs.map((w) => w.wrId)

describe('ReadyCompletions', () => {
  it('hands out a whole batch as it came when it is taken whole', () => {
    const r = new ReadyCompletions()
    const b = batch(1, 2, 3)
    r.add(b)
    expect(r.length).toBe(3)
    expect(r.take(3)).toBe(b)
    expect(r.empty).toBe(true)
  })

  it('takes across batches and parts of batches, oldest first', () => {
    const r = new ReadyCompletions()
    r.add(batch(1, 2, 3))
    r.add([])
    r.add(batch(4))
    r.add(batch(5, 6, 7, 8))
    expect(ids(r.take(2))).toEqual([1, 2])
    expect(ids(r.take(3))).toEqual([3, 4, 5])
    expect(r.length).toBe(3)
    expect(ids(r.take(16))).toEqual([6, 7, 8])
    expect(r.take(16)).toEqual([])
    r.add(batch(9, 10))
    expect(ids(r.take(2))).toEqual([9, 10])
  })

  it('takes nothing for a max that is not at least 1, and floors a fractional one', () => {
    const r = new ReadyCompletions()
    r.add(batch(1, 2, 3))
    expect(r.take(0)).toEqual([])
    expect(r.take(-1)).toEqual([])
    expect(r.take(Number.NaN)).toEqual([])
    expect(ids(r.take(1.9))).toEqual([1])
    expect(r.length).toBe(2)
  })
})
