/** CompletionRing: the provider-side CQ that mock and softroce share. */
import { describe, expect, it } from 'vitest'
import { CompletionRing, type WorkCompletion } from '../src/index.js'

class Ring extends CompletionRing {
  hookCalls = 0
  protected onDestroyed(): void {
    this.hookCalls++
  }
}

const wc = (wrId: number): WorkCompletion => ({ wrId, status: 'SUCCESS', opcode: 'SEND', byteLen: 0, qpNum: 2 }) as unknown as WorkCompletion
const turn = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('CompletionRing', () => {
  it('polls in order, in batches, and notifies once per batch in a later macrotask, never inside push', async () => {
    const ring = new Ring(8)
    let notified = 0
    ring.setNotify(() => notified++)
    ring.push(wc(1))
    ring.push(wc(2))
    ring.push(wc(3))
    expect(notified).toBe(0)
    await Promise.resolve()
    expect(notified).toBe(0)
    await turn()
    expect(notified).toBe(1)
    expect(ring.poll(2).map((w) => w.wrId)).toEqual([1, 2])
    expect(ring.count).toBe(1)
    expect(ring.poll(10).map((w) => w.wrId)).toEqual([3])
    expect(ring.poll(10)).toEqual([])
  })

  it('a completion pushed with soon is notified in a microtask', async () => {
    const ring = new Ring(8)
    let notified = 0
    ring.setNotify(() => notified++)
    ring.push(wc(1), true)
    expect(notified).toBe(0)
    await Promise.resolve()
    expect(notified).toBe(1)
  })

  it('overflow loses the completion, counts it and makes every producer fatal', () => {
    const ring = new Ring(2)
    const reasons: string[] = []
    ring.attach({ qpn: 5, fatal: (r) => reasons.push(`5:${r}`) })
    ring.attach({ qpn: 6, fatal: (r) => reasons.push(`6:${r}`) })
    expect(ring.push(wc(1))).toBe(true)
    expect(ring.push(wc(2))).toBe(true)
    expect(ring.push(wc(3))).toBe(false)
    expect(ring.overflows).toBe(1)
    expect(reasons).toEqual(['5:cq-overflow', '6:cq-overflow'])
    expect(ring.poll(10).map((w) => w.wrId)).toEqual([1, 2])
  })

  it('cannot be destroyed while QPs use it; destroy runs the hook once and drops completions', () => {
    const ring = new Ring(4)
    const qp = { qpn: 7, fatal: () => undefined }
    ring.attach(qp)
    expect(() => ring.destroy()).toThrow(expect.objectContaining({ code: 'ERR_QP_STATE' }))
    ring.detach(qp)
    ring.push(wc(1))
    ring.destroy()
    ring.destroy()
    expect(ring.hookCalls).toBe(1)
    expect(ring.destroyed).toBe(true)
    expect(ring.count).toBe(0)
    expect(ring.push(wc(2))).toBe(false)
  })
})
