/** The provider conformance suite, run against the mock fabric (one fresh fabric and two hosts per test). */
import { createContext } from '@rdma-session/core'
import { runConformance, type ConformanceFaults } from '@rdma-session/conformance'
import { MockFabric, mock } from '../src/index.js'

runConformance({
  name: 'mock',
  setup: async () => {
    const fabric = new MockFabric()
    const a = await createContext({ provider: mock({ fabric }) })
    const b = await createContext({ provider: mock({ fabric }) })
    const faults: ConformanceFaults = { killHost: (ctx) => void fabric.killHost(ctx.endpoint.address, ctx.endpoint.port) }
    return { a, b, faults, fabric }
  },
  // The suite has closed both contexts: their hosts must have left the fabric.
  teardown: async ({ fabric }) => {
    if (fabric.devices.length > 0) throw new Error(`${fabric.devices.length} mock device(s) still open after both contexts closed`)
  },
})
