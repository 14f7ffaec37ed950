/**
 * The softroce side of the rping interop test, run inside the rxe-vm guest's network namespace
 * (bundled and started by ../rping-interop.test.ts under a perl launcher that made the RoCE
 * socket on port 4791). `client`: connects to `rping -s` in the guest like `rping -c -V -C n`;
 * `server`: listens like `rping -s` and serves one `rping -c` from the guest; `core-server`: the same
 * through core's `ctx.listen({ cm })` (the rping client is a plain rdma_cm peer: a lone QP, a
 * 'connection' event). Prints one JSON line.
 */
import { once } from 'node:events'
import { createContext } from '@rdma-session/core'
import { createCm, softroce, type CmConnection, type CmListener, type ConnectionManager, type SoftRoceDevice } from '../../../src/index.js'
import { rpingClient, rpingListenOptions, rpingServer, type RpingResult } from '../rping-peer.js'

const [famArg, role, portArg, countArg] = process.argv.slice(2)
const fam = Number(famArg) as 4 | 6
const port = Number(portArg)
const count = Number(countArg)
const me = fam === 4 ? '10.77.0.1' : 'fd77::1'
const guest = fam === 4 ? '10.77.0.2' : 'fd77::2'
const fd = Number(process.env.SOFTROCE_FD)
const capture = process.env.SOFTROCE_CAPTURE

const ctx = await createContext({
  provider: softroce({ address: me, socket: { fd, pmtudiscDo: fam === 4, noCheck6Rx: fam === 6 }, ...(capture ? { capture } : {}) }),
})
const cm = role === 'core-server' ? (ctx.connectionManager() as ConnectionManager) : createCm(ctx)
let result: RpingResult | { error: string }
const t0 = performance.now()
try {
  if (role === 'client') {
    result = await rpingClient(ctx, cm, { host: guest, port, count, connectTimeoutMs: 120_000 })
  } else if (role === 'core-server') {
    const { options, state } = rpingListenOptions(ctx, port)
    const server = await ctx.listen({ cm: { port, ...(options.qp === undefined ? {} : { qp: options.qp }), ...(options.prepare === undefined ? {} : { prepare: options.prepare }) } })
    const listener = { accept: async () => ((await once(server, 'connection')) as [CmConnection])[0] }
    result = await rpingServer(listener as CmListener, state)
  } else {
    const { options, state } = rpingListenOptions(ctx, port)
    result = await rpingServer(cm.listen(options), state)
  }
} catch (err) {
  result = { error: `${(err as Error).message} ${JSON.stringify((err as { details?: unknown }).details ?? {})}` }
}
const ms = performance.now() - t0
// Let TIMEWAIT answer a late duplicate DREQ, then release everything.
await new Promise((r) => setTimeout(r, 500))
const snapshot = cm.snapshot()
cm.close()
const counters = (ctx.device as SoftRoceDevice).counters.snapshot()
await ctx.close()
console.log(JSON.stringify({ result, ms, cm: snapshot, drops: counters.drops }))
