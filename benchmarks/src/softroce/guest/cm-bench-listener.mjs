// Runs in the rxe-vm guest (--tap) for ../cm-connect-guest.mjs: a provider-verbs context on rxe2
// (IPv4, GID 1) listening two ways at once: rdma_cm (`ctx.listen({ cm: { port: 7700 } })`, sessions
// and plain peers) and the ws control plane (`ctx.listen({ port: 7701 })`, PSK). Prints
// CM-BENCH-READY when both listen; the host's side closes what it opens. Runs until the guest stops.
import { createContext } from '@rdma-session/core'
import { verbs } from '../../../../packages/provider-verbs/dist/index.js'

const psk = Buffer.alloc(32, 9)
const ctx = await createContext({ provider: verbs({ device: 'rxe2', gidIndex: 1 }) })
const cm = await ctx.listen({ cm: { port: 7700 } })
// Plain peers' lone QPs: closed when their peer disconnects.
cm.on('connection', (conn) => void conn.disconnected.then(() => conn.qp?.close()))
await ctx.listen({ port: 7701, host: '10.77.0.2', auth: { psk }, rateLimit: { qpsPerSecond: 1e9, burst: 1e9 } })
console.log('CM-BENCH-READY')
