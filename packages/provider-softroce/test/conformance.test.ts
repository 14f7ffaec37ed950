/** The provider conformance suite, run against two softroce devices on 127.0.0.1 with ephemeral ports (fresh per test). */
import { createContext } from '@rdma-session/core'
import { runConformance, type ConformanceFaults } from '@rdma-session/conformance'
import { softroce, type SoftRoceDevice } from '../src/index.js'

/** Short ACK timeouts so retry tests finish quickly; RNR waits capped. */
const timers = { ackTimeoutMinMs: 5, ackTimeoutMaxMs: 100, rnrDelayMaxMs: 20 }

runConformance({
  name: 'softroce',
  setup: async () => {
    const a = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0, timers }) })
    const b = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0, timers }) })
    const faults: ConformanceFaults = {
      killHost: (ctx) => {
        ;(ctx.device as SoftRoceDevice).impairment.blackhole = true
      },
    }
    return { a, b, faults }
  },
})
