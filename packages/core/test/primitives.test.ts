import { describe, expect, it } from 'vitest'
import { SPECIFICATION_VERSION, accessNamesToBits, accessBitsToNames, checkProviderCore, createContext, createInProcessLink, isRdmaError, loadProvider, satisfiesRange, type RdmaError } from '../src/index.js'
import { WorkTracker } from '../src/work-tracker.js'
import { SCRIPTED_CAPS } from './fakes/scripted-provider.js'

const pending = (id: number, signaled = true) => ({ id, userWrId: id * 10, opcode: 'SEND' as const, signaled, bytes: 1, postedAt: 0, resolve: null, reject: null })

describe('WorkTracker', () => {
  it('a WR behind unsignaled send WRs retires them with it, in order', () => {
    const t = new WorkTracker('send')
    for (let i = 1; i <= 5; i++) t.push(pending(i, i >= 3))
    const taken = t.take(3)
    expect(taken.kind).toBe('in-order')
    expect(taken.kind === 'in-order' && [taken.wr.id, taken.silent.map((p) => p.id)]).toEqual([3, [1, 2]])
    expect(t.size).toBe(2)
    expect(t.take(99).kind).toBe('stray')
    expect(t.takeAll().map((p) => p.id)).toEqual([4, 5])
    expect(t.size).toBe(0)
  })
  it('a WR behind a signaled send WR, or behind any receive, is out of order and names the WRs it skipped', () => {
    const sends = new WorkTracker('send')
    for (let i = 1; i <= 4; i++) sends.push(pending(i, i === 2))
    const s = sends.take(3)
    expect(s.kind === 'out-of-order' && [s.wr.id, s.earlier.map((p) => p.id), s.skipped.map((p) => p.id)]).toEqual([3, [1, 2], [2]])
    const recvs = new WorkTracker('recv')
    for (let i = 1; i <= 3; i++) recvs.push(pending(i))
    const r = recvs.take(2)
    expect(r.kind === 'out-of-order' && r.skipped.map((p) => p.id)).toEqual([1])
  })
  it('stays correct across many pushes and takes (compaction)', () => {
    const t = new WorkTracker('send')
    let next = 1
    for (let round = 0; round < 500; round++) {
      t.push(pending(next++))
      t.push(pending(next++, false))
      // takes the one left over from the round before (if any) and the first of this round
      const taken = t.take(next - 2)
      expect(taken.kind === 'in-order' && [...taken.silent, taken.wr].map((p) => p.id)).toEqual(round === 0 ? [1] : [next - 3, next - 2])
    }
    expect(t.size).toBe(1)
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
    const err = await loadProvider('@acme/provider-x', {}, async () => ({ notAProvider: true })).catch((e: unknown) => e)
    expect(isRdmaError(err, 'ERR_PROVIDER_INVALID')).toBe(true)
    const bad = await loadProvider('@acme/provider-x', {}, async () => ({ createProvider: () => ({ name: 1 }) })).catch((e: unknown) => e)
    expect(isRdmaError(bad, 'ERR_PROVIDER_INVALID')).toBe(true)
  })
  it('createContext refuses a provider built for another core, naming both versions', async () => {
    const provider = { name: 'fake', specificationVersion: SPECIFICATION_VERSION, capabilities: SCRIPTED_CAPS, openDevice: async () => { throw new Error('unused') }, package: { name: '@acme/provider-fake', version: '1.2.0', coreRange: '^0.2.0' } }
    expect(() => checkProviderCore(provider as never, '0.1.4')).toThrow(/@acme\/provider-fake 1\.2\.0 works with @rdma-session\/core \^0\.2\.0, but this app loaded core 0\.1\.4/)
    expect(() => checkProviderCore(provider as never, '0.2.7')).not.toThrow()
    const err = await createContext({ provider: { ...provider, package: { ...provider.package, coreRange: '>=99' } } as never }).catch((e: unknown) => e)
    expect(isRdmaError(err, 'ERR_PROVIDER_CORE_MISMATCH')).toBe(true)
  })
  it('satisfiesRange reads the range forms peer dependencies use', () => {
    const cases: Array<[string, string, boolean]> = [
      ['0.1.0', '^0.1.0', true], ['0.1.9', '^0.1.0', true], ['0.2.0', '^0.1.0', false], ['0.0.9', '^0.1.0', false],
      ['1.4.0', '^1.2.3', true], ['2.0.0', '^1.2.3', false], ['0.0.3', '^0.0.3', true], ['0.0.4', '^0.0.3', false],
      ['1.2.9', '~1.2.3', true], ['1.3.0', '~1.2.3', false], ['0.5.0', '>=0.1.0 <1', true], ['1.0.0', '>=0.1.0 <1', false],
      ['1.2.7', '1.2.x', true], ['1.3.0', '1.2.x', false], ['3.0.0', '^1.0.0 || ^3.0.0', true], ['0.2.0-beta.1', '^0.2.0', true],
      ['0.1.0', '0.1.0', true], ['0.1.1', '0.1.0', false], ['5.0.0', '*', true],
    ]
    for (const [v, r, ok] of cases) expect(satisfiesRange(v, r), `${v} in ${r}`).toBe(ok)
  })
  it('passes through errors that are not a missing package', async () => {
    await expect(loadProvider('@acme/provider-x', {}, async () => { throw new SyntaxError('broken') })).rejects.toThrow(SyntaxError)
  })
  it('creates a provider from a module exporting createProvider (also as default export)', async () => {
    const provider = { name: 'fake', specificationVersion: SPECIFICATION_VERSION, capabilities: SCRIPTED_CAPS, openDevice: async () => { throw new Error('unused') } }
    await expect(loadProvider('@acme/provider-fake', {}, async () => ({ createProvider: () => provider }))).resolves.toBe(provider)
    await expect(loadProvider('@acme/provider-fake', {}, async () => ({ default: { createProvider: () => provider } }))).resolves.toBe(provider)
  })
})
