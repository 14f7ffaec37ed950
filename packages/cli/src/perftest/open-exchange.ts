/**
 * How a perftest run meets its peer: perftest's TCP connection, or with -R the rdma_cm control
 * connection, on a softroce context made for it first (the test QPs are then made on the same
 * context: one device, one GID, one QP1).
 */
import type { Context } from '@rdma-session/core'
import type { ConnectionManager } from '@rdma-session/provider-softroce'
import { routeSourceAddress } from '../oob/route.js'
import { acceptOne, connectTcp } from '../oob/tcp.js'
import { PerftestChannel } from './channel.js'
import type { PerftestCmChannel } from './cm-channel.js'
import { PerftestEndpoint } from './endpoint.js'
import type { PerftestExchange } from './exchange.js'
import { createPerftestCm, openControl } from './rdma-cm.js'
import type { PerftestOptions } from './run-perftest.js'

/** The exchange of a run: perftest's TCP connection, or with -R the rdma_cm control connection on a context made for it. */
export interface Exchange {
  readonly channel: PerftestExchange
  readonly address: string
  readonly cm?: { readonly ctx: Context; readonly manager: ConnectionManager; readonly control: PerftestCmChannel }
}

/** A server says it waits once it listens (perftest prints it just before it starts listening). */
export async function openExchange(o: PerftestOptions): Promise<Exchange> {
  const client = o.host !== undefined
  const onListening = (port: number): void => {
    o.out('\n************************************\n* Waiting for client to connect... *\n************************************\n')
    o.onListening?.(port)
  }
  if (o.rdmaCm !== true) {
    const socket = client ? await connectTcp(o.host!, o.tcpPort) : await acceptOne(o.tcpPort, onListening)
    const channel = new PerftestChannel(socket, client, o.exchangeTimeoutMs)
    return { channel, address: o.address ?? channel.localAddress }
  }
  const address = o.address ?? (await routeSourceAddress(o.host!))
  const ctx = await PerftestEndpoint.openContext({ address, rocePort: o.rocePort, ...(o.ibDev === undefined ? {} : { ibDev: o.ibDev }), ...(o.softroce === undefined ? {} : { softroce: o.softroce }) })
  let manager: ConnectionManager | null = null
  try {
    manager = await createPerftestCm(ctx, o.remoteRocePort ?? o.rocePort)
    const control = await openControl(ctx, manager, { ...(o.host === undefined ? {} : { host: o.host }), port: o.tcpPort, timeoutMs: o.exchangeTimeoutMs, onListening })
    return { channel: control, address, cm: { ctx, manager, control } }
  } catch (err) {
    manager?.close()
    await ctx.close()
    throw err
  }
}
