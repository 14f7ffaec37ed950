/**
 * perftest's -R (perftest_communication.c, perftest 6.06): everything goes through rdma_cm on
 * the -p port, IPv4 (perftest resolves with AF_INET only), port space TCP.
 *
 * 1. rdma_client_connect / rdma_server_connect: the control connection (an RC QP, one receive
 *    posted before rdma_connect/rdma_accept, no private data); the server then stops listening.
 *    Versions, system data and MTU follow over it (PerftestCmChannel).
 * 2. create_rdma_cm_connection: a handshake, then one rdma_cm connection per test QP to the same
 *    port (the server listens again, before it answers that handshake; a client retries a refused
 *    connect 100 ms apart, because perftest's server listens only after answering it: perftest
 *    retries 10 times, we until the exchange deadline), then another handshake. The QPs are the CM's: RTS, PSNs and path from REQ/REP.
 * 3. The run exchanges the QP keys (rkey, vaddr) as without -R, but there is no GID check and
 *    no ctx_connect.
 * 4. The end (destroy_ctx): the client disconnects each test connection (DREQ) and waits for
 *    the DREPs; the server answers them. The control connection is torn down after that.
 */
import type { Context } from '@rdma-session/core'
import type { CmConnection, CmListener, CmQpOptions, ConnectionManager } from '@rdma-session/provider-softroce'
import { PerftestCmChannel } from './cm-channel.js'
import { PerftestExchangeError, type PerftestDest } from './wire.js'

/** NUM_OF_RETRIES / retry delay of rdma_cm_client_connection. */
const CONNECT_TRIES = 10
const CONNECT_DELAY_MS = 100
/** How long the end waits for the peer's DREQ or DREP before giving up on a clean disconnect. */
const DISCONNECT_WAIT_MS = 10_000

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A deadline for `p`: rejects with ERR_OOB_TIMEOUT (`what`) when it has not settled in `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new PerftestExchangeError(`${what}: nothing from the peer in ${ms / 1000} s`, 'ERR_OOB_TIMEOUT')), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

/** softroce's connection manager on the run's context; peers' QP1 and QPs receive on `peerRocePort`. */
export async function createPerftestCm(ctx: Context, peerRocePort: number): Promise<ConnectionManager> {
  const { createCm } = await import('@rdma-session/provider-softroce')
  return createCm(ctx, { peerRocePort })
}

const refusedNoListener = (err: unknown): boolean => (err as { details?: { rejReasonName?: unknown } }).details?.rejReasonName === 'INVALID_SERVICE_ID'

/**
 * rdma_connect, retried 100 ms apart while nobody listens on the port yet: `CONNECT_TRIES` times
 * (perftest's count), or until `deadline` (Date.now() ms) when given.
 */
async function connectRetrying(cm: ConnectionManager, host: string, port: number, qp: CmQpOptions, deadline?: number): Promise<CmConnection> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await cm.connect({ host, port, ...qp })
    } catch (err) {
      const more = deadline === undefined ? attempt < CONNECT_TRIES : Date.now() + CONNECT_DELAY_MS < deadline
      if (!refusedNoListener(err) || !more) {
        throw new PerftestExchangeError(`Couldn't connect to ${host}:${port} through rdma_cm (${(err as Error).message})`, 'ERR_PERFTEST_CONNECT')
      }
      await sleep(CONNECT_DELAY_MS)
    }
  }
}

export interface ControlOptions {
  readonly host?: string
  readonly port: number
  readonly timeoutMs: number
  readonly onListening?: (port: number) => void
}

/** Step 1: the control connection, as client (to host:port) or server (listening on port). */
export async function openControl(ctx: Context, cm: ConnectionManager, o: ControlOptions): Promise<PerftestCmChannel> {
  const channel = new PerftestCmChannel(ctx, o.host !== undefined, o.timeoutMs)
  if (o.host !== undefined) {
    channel.attach(await connectRetrying(cm, o.host, o.port, channel.qpOptions))
    return channel
  }
  const listener = cm.listen({ port: o.port, backlog: 1, ...channel.qpOptions })
  try {
    o.onListening?.(o.port)
    channel.attach(await listener.accept())
  } finally {
    listener.close()
  }
  return channel
}

/** Step 2: the test QPs' connections (after the run's resources exist), between two handshakes. */
export async function connectTestQps(cm: ConnectionManager, channel: PerftestCmChannel, o: { host?: string; port: number; qps: number; zero: PerftestDest; qp: CmQpOptions }): Promise<CmConnection[]> {
  const server: { listener: CmListener | null } = { listener: null }
  const conns: CmConnection[] = []
  try {
    // The server listens before it answers: the client connects as soon as it has the answer.
    await channel.handshake(o.zero, false, () => (server.listener = cm.listen({ port: o.port, backlog: o.qps, ...o.qp })))
    // perftest's server listens only after it answered: a client retries (perftest 10 times; here
    // for as long as a setup exchange may wait, so a slow server is no failure).
    const deadline = Date.now() + channel.timeoutMs
    for (let i = 0; i < o.qps; i++) {
      if (o.host !== undefined) conns.push(await connectRetrying(cm, o.host, o.port, o.qp, deadline))
      else conns.push(await within(server.listener!.accept(), channel.timeoutMs, `Couldn't accept rdma_cm connection ${i + 1} of ${o.qps}`))
    }
  } catch (err) {
    for (const c of conns) void c.disconnect().catch(() => {})
    throw err
  } finally {
    server.listener?.close()
  }
  await channel.handshake(o.zero)
  return conns
}

/** Step 4: the client disconnects the test connections, the server waits for that; then the control connection goes. */
export async function disconnectAll(channel: PerftestCmChannel, tests: readonly CmConnection[]): Promise<void> {
  const settle = (p: Promise<unknown>): Promise<unknown> => within(p, DISCONNECT_WAIT_MS, 'disconnect').catch(() => undefined)
  if (channel.client) await Promise.all(tests.map((c) => settle(c.disconnect())))
  else {
    await Promise.all(tests.map((c) => settle(c.disconnected)))
    await Promise.all(tests.map((c) => settle(c.disconnect())))
  }
  const control = channel.connection
  if (control !== null) await settle(control.disconnect())
}
