/** The provider conformance suite through provider-verbs, on the guest's kernel rxe device (both contexts on one device). */
import { createContext } from '@rdma-session/core'
import { runConformance } from '@rdma-session/conformance'
import { verbs } from '../src/index.js'

const provider = verbs({ device: process.env.RXE_DEVICE ?? 'rxe0' })

runConformance({
  name: 'verbs',
  setup: async () => {
    const a = await createContext({ provider })
    const b = await createContext({ provider })
    return { a, b }
  },
  timeoutMs: Number(process.env.CONFORMANCE_TIMEOUT_MS ?? 30_000),
})
