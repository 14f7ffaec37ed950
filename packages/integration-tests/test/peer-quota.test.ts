/**
 * Per-peer quotas (issue 22, probe 3) on provider-mock over ws: QPs, sessions and QP memory per
 * authenticated identity, whatever the source address; ERR_QUOTA names the limit; closing gives
 * the quota back. The QP-creation rate limit is one bucket per identity too.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createContext, estimateQpBytes, type Context } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { PSK, expectCode, waitFor } from './helpers.js'

const auth = { psk: PSK }
const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** A server and two clients of the same identity (the PSK) on two different addresses. */
async function setup(listen: Omit<Parameters<Context['listen']>[0], 'auth'>) {
  const fabric = new MockFabric()
  const make = async (address: string) => {
    const ctx = await createContext({ provider: mock({ fabric, address }) })
    cleanups.push(() => ctx.close())
    return ctx
  }
  const server = await make('10.9.0.1')
  const c1 = await make('10.9.0.2')
  const c2 = await make('10.9.0.3')
  const srv = await server.listen({ port: 0, auth, ...listen })
  return { server, srv, c1, c2 }
}

describe('per-peer quotas', () => {
  it('sessions and QPs are counted per identity across source addresses; ERR_QUOTA names the limit; closing gives them back', async () => {
    const { server, srv, c1, c2 } = await setup({ quota: { sessions: 2, qps: 6 } })
    const s1 = await c1.connect(srv.url, { auth, qps: [{}, {}] })
    const s2 = await c2.connect(srv.url, { auth, qps: [{}, {}] })
    // A third session from either address is over the identity's session quota.
    const third = await expectCode(c2.connect(srv.url, { auth, qps: [{}] }), 'ERR_QUOTA')
    expect(third.details).toMatchObject({ limit: 'sessions', max: 2, used: 2 })
    expect(third.message).toMatch(/quota is 2/)
    // QPs: 4 held, 2 more fit, the 3rd does not (all or nothing).
    await expectCode(s1.addQps([{}, {}, {}]), 'ERR_QUOTA').then((e) => expect(e.details).toMatchObject({ limit: 'qps', max: 6, used: 4, requested: 3 }))
    await s1.addQps([{}, {}])
    await expectCode(s2.addQps([{}]), 'ERR_QUOTA')
    expect(server.handles.qps, 'refused requests left no QPs behind').toBe(6)
    // Closing returns sessions and QPs.
    await s1.close()
    await waitFor(() => server.handles.qps === 2, 5000, 'the server closed s1\'s QPs')
    const s3 = await c1.connect(srv.url, { auth, qps: [{}, {}, {}, {}] })
    expect(s3.size).toBe(4)
    await s2.close()
    await s3.close()
    await waitFor(() => server.handles.qps === 0 && server.handles.sessions === 0, 5000, 'everything closed')
  })

  it('QP memory is estimated from the queue depths asked for; a request past memoryBytes is refused whole', async () => {
    const big = { caps: { maxSendWr: 4096, maxRecvWr: 4096 } }
    const { server, srv, c1 } = await setup({ quota: { memoryBytes: 3 * estimateQpBytes(big.caps) } })
    const s = await c1.connect(srv.url, { auth, qps: [big, big] })
    const err = await expectCode(s.addQps([big, big]), 'ERR_QUOTA')
    expect(err.details).toMatchObject({ limit: 'memoryBytes' })
    expect(server.handles.qps).toBe(2)
    await s.addQps([big])
    expect(server.handles.qps).toBe(3)
  })

  it('the QP-creation rate limit is one bucket per identity, not per source address', async () => {
    const { srv, c1, c2 } = await setup({ rateLimit: { qpsPerSecond: 1, burst: 6 } })
    await c1.connect(srv.url, { auth, qps: Array.from({ length: 4 }, () => ({})) })
    const err = await expectCode(c2.connect(srv.url, { auth, qps: Array.from({ length: 4 }, () => ({})) }), 'ERR_RATE_LIMIT')
    expect(err.details).toMatchObject({ peer: expect.stringMatching(/^psk:/) })
  })

  it('a bad quota setting is refused with ERR_INVALID_ARGUMENT', async () => {
    const { c1 } = await setup({})
    await expectCode(c1.listen({ port: 0, auth, quota: { qps: -1 } }), 'ERR_INVALID_ARGUMENT')
  })
})
