// Two contexts on one rxe device with one RC QP each, connected to each other through the
// device (INIT → RTR → RTS by hand, every access flag), and an MR of `bytes` on each side.
// Shared by the guest benchmarks (write-bench.mjs, post-cost.mjs).
import { createContext } from '@rdma-session/core'
import { verbs } from '../dist/index.js'

export async function loopbackPair({ device = 'rxe0', gidIndex = 1, pollMode = true, bytes = 4096, maxSendWr = 256 } = {}) {
  const provider = verbs({ device, gidIndex, pollMode })
  const a = await createContext({ provider })
  const b = await createContext({ provider })
  const access = { access: ['local-write', 'remote-write', 'remote-read'] }
  const mra = a.registerMemory(Buffer.alloc(bytes), access)
  const mrb = b.registerMemory(Buffer.alloc(bytes), access)
  const caps = { maxSendWr, maxRecvWr: 16, maxInlineData: 64 }
  const qa = a.createQp({ caps }), qb = b.createQp({ caps })
  const mtu = a.capabilities.maxMtu
  qa.modify({ state: 'INIT', accessFlags: 0b111 }); qb.modify({ state: 'INIT', accessFlags: 0b111 })
  qa.modify({ state: 'RTR', remote: b.endpoint, pathMtu: mtu, destQpn: qb.qpn, rqPsn: qb.localPsn })
  qb.modify({ state: 'RTR', remote: a.endpoint, pathMtu: mtu, destQpn: qa.qpn, rqPsn: qa.localPsn })
  qa.modify({ state: 'RTS', sqPsn: qa.localPsn }); qb.modify({ state: 'RTS', sqPsn: qb.localPsn })
  return { a, b, mra, mrb, qa, qb }
}
