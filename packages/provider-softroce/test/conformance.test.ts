/**
 * The provider conformance suite, run against two softroce devices on 127.0.0.1 with ephemeral
 * ports (fresh per test), with selective repeat (the default between softroce peers) and with
 * go-back-N (selectiveRepeat: false).
 */
import { createContext } from '@rdma-session/core'
import { runConformance, type ConformanceFaults } from '@rdma-session/conformance'
import { softroce, type SoftRoceDevice } from '../src/index.js'

/** Short ACK timeouts so retry tests finish quickly; RNR waits capped. */
const timers = { ackTimeoutMinMs: 5, ackTimeoutMaxMs: 100, rnrDelayMaxMs: 20 }

for (const selectiveRepeat of [true, false]) {
  runConformance({
    name: selectiveRepeat ? 'softroce (selective repeat)' : 'softroce (go-back-N)',
    setup: async () => {
      const a = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0, timers, selectiveRepeat }) })
      const b = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0, timers, selectiveRepeat }) })
      const faults: ConformanceFaults = {
        killHost: (ctx) => {
          ;(ctx.device as SoftRoceDevice).impairment.blackhole = true
        },
      }
      return { a, b, faults }
    },
  })
}
