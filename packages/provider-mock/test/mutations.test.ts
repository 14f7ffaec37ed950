/** The mutation run on the mock: each deliberately broken mock (see @rdma-session/conformance BREAKS) must fail a named conformance case. */
import { createContext } from '@rdma-session/core'
import { runMutations, type ConformanceFaults } from '@rdma-session/conformance'
import { MockFabric, mock } from '../src/index.js'

runMutations({
  name: 'mock',
  setup: async (wrap) => {
    const fabric = new MockFabric()
    const a = await createContext({ provider: wrap(mock({ fabric })) })
    const b = await createContext({ provider: wrap(mock({ fabric })) })
    const faults: ConformanceFaults = { killHost: (ctx) => void fabric.killHost(ctx.endpoint.address, ctx.endpoint.port) }
    return { a, b, faults, fabric }
  },
  teardown: async ({ fabric }) => {
    if (fabric.devices.length > 0) throw new Error(`${fabric.devices.length} mock device(s) still open after both contexts closed`)
  },
})
