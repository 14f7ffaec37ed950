/** Two softroce contexts on 127.0.0.1 with a connection manager each, pointed at the other's RoCE port. */
import { createContext, type Context } from '@rdma-session/core'
import { createCm, softroce, type CmOptions, type CmTimingOptions, type ConnectionManager, type SoftRoceDevice } from '../../src/index.js'
import { TEST_TIMERS } from '../rc/harness.js'

export interface CmPair {
  readonly a: Context
  readonly b: Context
  readonly cmA: ConnectionManager
  readonly cmB: ConnectionManager
  close(): Promise<void>
}

/** Fast CM timing: REQs and DREQs resent after ~260 ms (a loaded host still answers in time), short TIMEWAIT. */
export const FAST_CM: CmTimingOptions = { packetLifeTime: 8, responseTimeout: 16, maxRetries: 3, minWaitMs: 5, timewaitMs: 200 }

export async function openCmPair(timing: CmTimingOptions = FAST_CM, address = '127.0.0.1', optionsB: CmOptions = {}): Promise<CmPair> {
  const a = await createContext({ provider: softroce({ address, port: 0, timers: TEST_TIMERS }) })
  const b = await createContext({ provider: softroce({ address, port: 0, timers: TEST_TIMERS }) })
  const cmA = createCm(a, { timing, peerRocePort: (b.device as SoftRoceDevice).info.port })
  const cmB = createCm(b, { timing, peerRocePort: (a.device as SoftRoceDevice).info.port, ...optionsB })
  return {
    a, b, cmA, cmB,
    close: async () => {
      cmA.close()
      cmB.close()
      await Promise.all([a.close(), b.close()])
    },
  }
}
