/**
 * The softroce side of the rping interop test, run inside the rxe-vm guest's network namespace
 * (bundled and started by ../rping-interop.test.ts under a perl launcher that made the RoCE
 * socket on port 4791). `client`: connects to `rping -s` in the guest like `rping -c -V -C n`;
 * `server`: listens like `rping -s` and serves one `rping -c` from the guest. Prints one JSON line.
 */
import { createContext } from '@rdma-session/core'
import { createCm, softroce, type SoftRoceDevice } from '../../../src/index.js'
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
const cm = createCm(ctx)
let result: RpingResult | { error: string }
const t0 = performance.now()
try {
  if (role === 'client') {
    result = await rpingClient(ctx, cm, { host: guest, port, count, connectTimeoutMs: 120_000 })
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
