// TypeScript consumer (CommonJS types, the "require" condition): checked with tsc --noEmit, strict.
import core = require('@rdma-session/core')
import mockProvider = require('@rdma-session/provider-mock')

export async function run(): Promise<number> {
  const ctx: core.Context = await core.createContext({ provider: mockProvider.mock() })
  const cq: core.CompletionQueue = ctx.createCq({ depth: 16 })
  const qp: core.QueuePair = ctx.createQp({ sendCq: cq, recvCq: cq, qos: { class: 'bulk', rateLimit: '2Gbps' } })
  const state: core.QpState = qp.state
  await ctx.close()
  // @ts-expect-error: depth is a number
  ctx.createCq({ depth: 'deep' })
  return state.length
}
