/** The mutation run on softroce: each deliberately broken softroce (see @rdma-session/conformance BREAKS) must fail a named conformance case. */
import { createContext } from '@rdma-session/core'
import { runMutations } from '@rdma-session/conformance'
import { softroce } from '../src/index.js'

/** Short ACK timeouts, as in conformance.test.ts. */
const timers = { ackTimeoutMinMs: 5, ackTimeoutMaxMs: 100, rnrDelayMaxMs: 20 }

runMutations({
  name: 'softroce',
  setup: async (wrap) => {
    const a = await createContext({ provider: wrap(softroce({ address: '127.0.0.1', port: 0, timers })) })
    const b = await createContext({ provider: wrap(softroce({ address: '127.0.0.1', port: 0, timers })) })
    return { a, b }
  },
})
