/** Core's own bookkeeping, once (it used to run in the conformance suite for every provider): default QP caps and handle counts. */
import { describe, expect, it } from 'vitest'
import { DEFAULT_QP_CAPS, createContext } from '../src/index.js'
import { SCRIPTED_CAPS, scriptedProvider } from './fakes/scripted-provider.js'

describe('context bookkeeping', () => {
  it("a QP created with default caps gets core's defaults, cut to the provider's declared limits", async () => {
    const ctx = await createContext({ provider: scriptedProvider() })
    expect(ctx.createQp().caps).toEqual({
      maxSendWr: Math.min(DEFAULT_QP_CAPS.maxSendWr, SCRIPTED_CAPS.maxQpWr),
      maxRecvWr: Math.min(DEFAULT_QP_CAPS.maxRecvWr, SCRIPTED_CAPS.maxQpWr),
      maxSendSge: Math.min(DEFAULT_QP_CAPS.maxSendSge, SCRIPTED_CAPS.maxSge),
      maxRecvSge: Math.min(DEFAULT_QP_CAPS.maxRecvSge, SCRIPTED_CAPS.maxSge),
      maxInlineData: Math.min(DEFAULT_QP_CAPS.maxInlineData, SCRIPTED_CAPS.maxInline),
    })
    // The scripted provider declares less than every default, so each one was cut.
    expect(ctx.createQp().caps).toEqual({ maxSendWr: 32, maxRecvWr: 32, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 16 })
    await ctx.close()
  })

  it('counts regions, CQs and QPs (a QP without CQs gets one of its own) and gives each back on close', async () => {
    const ctx = await createContext({ provider: scriptedProvider() })
    const mr = ctx.registerMemory(Buffer.alloc(64))
    const cq = ctx.createCq()
    const own = ctx.createQp()
    const shared = ctx.createQp({ sendCq: cq, recvCq: cq })
    expect(ctx.handles).toEqual({ regions: 1, cqs: 2, qps: 2, sessions: 0 })
    await own.close()
    expect(ctx.handles, "a QP's own CQ goes with it").toEqual({ regions: 1, cqs: 1, qps: 1, sessions: 0 })
    await shared.close()
    ctx.destroyCq(cq)
    mr.deregister()
    expect(ctx.handles).toEqual({ regions: 0, cqs: 0, qps: 0, sessions: 0 })
  })

  it('closing the context releases every handle it still holds', async () => {
    const ctx = await createContext({ provider: scriptedProvider() })
    ctx.registerMemory(Buffer.alloc(64))
    ctx.createCq()
    ctx.createQp()
    await ctx.close()
    expect(ctx.closed).toBe(true)
    expect(ctx.handles).toEqual({ regions: 0, cqs: 0, qps: 0, sessions: 0 })
  })
})
