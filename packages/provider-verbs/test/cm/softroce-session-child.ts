/**
 * The host side of ../cm-session-guest.test.ts: provider-softroce through core, in the rxe-vm
 * guest's network namespace, under a perl launcher that made the RoCE socket on port 4791 (as
 * provider-softroce's rping interop child). argv: family, role, rdma_cm port, QPs, closer.
 *   connect  ctx.connect('rdma-cm://<guest>:<port>') to the verbs listener in the guest
 *   listen   ctx.listen({ cm: { port } }), then tells the guest over TCP (port 7590 + family) to connect
 * Prints one JSON line: { report } or { error }.
 */
import { connect as tcp } from 'node:net'
import { createContext } from '@rdma-session/core'
import { softroce } from '../../../provider-softroce/src/index.js'
import { connectSide, listenSide, type Closer } from './session-exchange.js'

const [famArg, role, portArg, nArg, closer] = process.argv.slice(2)
const fam = Number(famArg) as 4 | 6
const port = Number(portArg)
const n = Number(nArg)
const me = fam === 4 ? '10.77.0.1' : 'fd77::1'
const guest = fam === 4 ? '10.77.0.2' : 'fd77::2'
const fd = Number(process.env.SOFTROCE_FD)

const ctx = await createContext({ provider: softroce({ address: me, socket: { fd, pmtudiscDo: fam === 4, noCheck6Rx: fam === 6 } }) })
let out: Record<string, unknown>
try {
  if (role === 'connect') {
    out = { report: await connectSide(ctx, `rdma-cm://${fam === 6 ? `[${guest}]` : guest}:${port}`, 'softroce', n, closer as Closer, 30_000) }
  } else {
    const server = await ctx.listen({ cm: { port } })
    const served = listenSide(ctx, server, 'softroce', n + 1, closer as Closer)
    const s = tcp(7590 + fam, guest)
    s.on('error', () => {})
    s.end('go\n')
    out = { report: await served }
  }
} catch (err) {
  out = { error: `${(err as Error).message} ${JSON.stringify((err as { code?: string; details?: unknown }).code ?? '')} ${JSON.stringify((err as { details?: unknown }).details ?? {})}` }
}
await ctx.close()
console.log(JSON.stringify(out))
