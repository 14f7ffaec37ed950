import { describe, expect, it } from 'vitest'
import { LatencyHistogram, QpStats, accessNamesToBits, accessBitsToNames, createInProcessLink, isRdmaError, loadProvider } from '../src/index.js'
import { WorkTracker } from '../src/work-tracker.js'

const pending = (id: number, signaled = true) => ({ id, userWrId: id * 10, opcode: 'SEND' as const, signaled, bytes: 1, postedAt: 0, resolve: null, reject: null })

describe('WorkTracker', () => {
  it('settles a WR and every unsignaled WR before it, in order', () => {
    const t = new WorkTracker()
    for (let i = 1; i <= 5; i++) t.push(pending(i, i % 2 === 0))
    expect(t.takeThrough(3).map((p) => p.id)).toEqual([1, 2, 3])
    expect(t.size).toBe(2)
    expect(t.takeThrough(99)).toEqual([])
    expect(t.takeAll().map((p) => p.id)).toEqual([4, 5])
    expect(t.size).toBe(0)
  })
  it('stays correct across many pushes and takes (compaction)', () => {
    const t = new WorkTracker()
    let next = 1
    for (let round = 0; round < 500; round++) {
      t.push(pending(next++))
      t.push(pending(next++))
      // takes the one left over from the round before (if any) and the first of this round
      expect(t.takeThrough(next - 2).map((p) => p.id)).toEqual(round === 0 ? [1] : [next - 3, next - 2])
    }
    expect(t.size).toBe(1)
  })
})

describe('LatencyHistogram', () => {
  it('reports quantiles by power-of-two bucket and merges', () => {
    const h = new LatencyHistogram()
    for (let i = 0; i < 99; i++) h.record(3)
    h.record(1000)
    expect(h.count).toBe(100)
    expect(h.quantile(0.5)).toBe(4) // 3 µs falls in the [2, 4) bucket
    expect(h.quantile(0.995)).toBe(1000)
    const s = new QpStats()
    s.latency.record(5)
    const sum = QpStats.sum([s, Object.assign(new QpStats(), { bytesSent: 7 })])
    expect(sum.latency.count).toBe(1)
    expect(sum.bytesSent).toBe(7)
    expect(new LatencyHistogram().snapshot().p99Micros).toBe(0)
  })
})

describe('access flags', () => {
  it('round-trips names and rejects unknown ones', () => {
    const bits = accessNamesToBits(['local-write', 'remote-read'])
    expect(accessBitsToNames(bits)).toEqual(['local-write', 'remote-read'])
    expect(() => accessNamesToBits(['remote-everything' as never])).toThrow(/unknown access flag/)
  })
})

describe('in-process peer link', () => {
  it('copies requests, answers with the handler, and carries error codes back', async () => {
    const [a, b] = createInProcessLink()
    const seen: unknown[] = []
    b.setHandler(async (req) => {
      seen.push(req)
      if (req.type === 'remove-qp') throw Object.assign(new Error('nope'), {})
      return { type: 'ack' }
    })
    const req = { type: 'close-session', sessionId: 'x', from: { address: '127.0.0.1', port: 1 }, reason: 'r' } as const
    await expect(a.request(req)).resolves.toEqual({ type: 'ack' })
    expect(seen[0]).toEqual(req)
    expect(seen[0]).not.toBe(req)
    await expect(a.request({ type: 'remove-qp', sessionId: 'x', from: req.from, qpn: 3 })).rejects.toMatchObject({ code: 'ERR_PEER' })
    await expect(b.request(req)).rejects.toMatchObject({ code: 'ERR_PEER', message: expect.stringContaining('serves no sessions') })
    a.close()
    await expect(a.request(req)).rejects.toMatchObject({ code: 'ERR_PEER' })
  })
})

describe('provider loader', () => {
  it('names the package to install when a provider is missing', async () => {
    // A package no workspace member has (softroce and verbs are reachable once examples depend on them).
    const err = await loadProvider('@rdma-session/provider-not-installed').catch((e: unknown) => e)
    expect(isRdmaError(err, 'ERR_PROVIDER_MISSING')).toBe(true)
    expect((err as Error).message).toContain('pnpm add @rdma-session/provider-not-installed')
  })
  it('rejects a package that is not a provider', async () => {
    const err = await loadProvider('x', {}, async () => ({ notAProvider: true })).catch((e: unknown) => e)
    expect(isRdmaError(err, 'ERR_PROVIDER_INVALID')).toBe(true)
    const bad = await loadProvider('x', {}, async () => ({ createProvider: () => ({ name: 1 }) })).catch((e: unknown) => e)
    expect(isRdmaError(bad, 'ERR_PROVIDER_INVALID')).toBe(true)
  })
  it('passes through errors that are not a missing package', async () => {
    await expect(loadProvider('x', {}, async () => { throw new SyntaxError('broken') })).rejects.toThrow(SyntaxError)
  })
  it('creates a provider from a module exporting createProvider (also as default export)', async () => {
    const provider = { name: 'fake', capabilities: {}, openDevice: async () => { throw new Error('unused') } }
    await expect(loadProvider('fake', {}, async () => ({ createProvider: () => provider }))).resolves.toBe(provider)
    await expect(loadProvider('fake', {}, async () => ({ default: { createProvider: () => provider } }))).resolves.toBe(provider)
  })
})
