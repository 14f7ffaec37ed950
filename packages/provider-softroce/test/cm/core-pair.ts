/** Two core contexts on softroce over UDP loopback, each with its rdma_cm connection manager (through core's hook) aimed at the other's RoCE port. */
import { createContext, type Context } from '@rdma-session/core'
import { softroce, type SoftRoceDevice } from '../../src/index.js'
import { TEST_TIMERS } from '../rc/harness.js'
import { FAST_CM } from './cm-pair.js'

export interface CoreCmPair {
  readonly a: Context
  readonly b: Context
  close(): Promise<void>
}

export async function openCoreCmPair(address = '127.0.0.1'): Promise<CoreCmPair> {
  const a = await createContext({ provider: softroce({ address, port: 0, timers: TEST_TIMERS }) })
  const b = await createContext({ provider: softroce({ address, port: 0, timers: TEST_TIMERS }) })
  a.connectionManager({ timing: FAST_CM, peerRocePort: (b.device as SoftRoceDevice).info.port })
  b.connectionManager({ timing: FAST_CM, peerRocePort: (a.device as SoftRoceDevice).info.port })
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) }
}
