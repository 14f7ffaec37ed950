/**
 * `ibv_rc_pingpong` on a softroce QP: the same QP setup (RTR: max_dest_rd_atomic 1, min RNR timer
 * 12; RTS: timeout 14, retry 7, RNR retry 7), the same rx_depth receives on one buffer, the same
 * SEND ping-pong (the client sends first; each side sends again once its last send and a receive
 * have completed) and the same summary lines, so either end can be the real rc_pingpong.
 */
import { performance } from 'node:perf_hooks'
import type { CompletionQueue, Context, MemoryRegion, PathMtu, QueuePair, WorkCompletion } from '@rdma-session/core'
import { deviceCounters, openSoftroceContext, wcStatus, type SoftroceFactory } from '../oob/softroce.js'
import { peerRoceAddress } from '../oob/gid.js'
import { addressToGid, clientExchange, formatGid, serverExchange, type PingpongDest } from './wire-exchange.js'

export interface PingpongOptions {
  /** Connect to rc_pingpong's server here; without it, be the server. */
  readonly host?: string
  /** TCP port of the exchange (-p, default 18515). */
  readonly tcpPort: number
  /** -d: names the softroce device. */
  readonly ibDev?: string
  /** -i: the port number given at INIT. */
  readonly ibPort: number
  readonly size: number
  readonly mtu: PathMtu
  readonly rxDepth: number
  readonly iters: number
  readonly sl: number
  /** -c: the client marks the first byte of each page, the server checks it. */
  readonly validate: boolean
  /** Local IP to bind and advertise as the GID; default: the local address of the TCP exchange. */
  readonly address?: string
  /** Local UDP port (default 4791). */
  readonly rocePort: number
  /** The peer's UDP port (default: rocePort). */
  readonly remoteRocePort?: number
  /** How softroce is made (tests substitute). Default: import('@rdma-session/provider-softroce'). */
  readonly softroce?: SoftroceFactory
  /** Lines rc_pingpong prints on stdout. */
  readonly out: (text: string) => void
  /** The server is accepting on this TCP port. */
  readonly onListening?: (port: number) => void
}

export interface PingpongResult {
  readonly local: PingpongDest
  readonly remote: PingpongDest
  readonly bytes: number
  readonly iters: number
  readonly usec: number
  /** Pages whose first byte was not what the client wrote (server with -c). */
  readonly invalidPages: readonly number[]
  /** The softroce device's counters at the end (packets, retransmits, drops by reason, ...). */
  readonly counters?: Record<string, unknown>
}

/** What rc_pingpong reports on stderr before it exits 1. */
export class PingpongFailure extends Error {
  override readonly name = 'PingpongFailure'
  readonly code = 'ERR_PINGPONG'
}

const RECV_WRID = 1
const SEND_WRID = 2
/** sysconf(_SC_PAGESIZE) on the hosts rc_pingpong runs on. */
const PAGE_SIZE = 4096

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')

/** "  local address:  LID 0x0000, QPN 0x00abcd, PSN 0x123456, GID ::ffff:10.77.0.1" */
export function addressLine(label: 'local address: ' | 'remote address:', d: PingpongDest): string {
  return `  ${label} LID 0x${hex(d.lid, 4)}, QPN 0x${hex(d.qpn, 6)}, PSN 0x${hex(d.psn, 6)}, GID ${formatGid(d.gid)}\n`
}

/** rc_pingpong's two result lines (usec is a C float there). */
export function summaryLines(size: number, iters: number, elapsedUsec: number): string {
  const usec = Math.fround(elapsedUsec)
  const bytes = size * iters * 2
  return `${bytes} bytes in ${(usec / 1e6).toFixed(2)} seconds = ${((bytes * 8) / usec).toFixed(2)} Mbit/sec\n` +
    `${iters} iters in ${(usec / 1e6).toFixed(2)} seconds = ${Math.fround(usec / iters).toFixed(2)} usec/iter\n`
}

/** One rc_pingpong context: device, buffer, CQ, QP in INIT with rx_depth receives posted. */
class PingpongEndpoint {
  readonly ctx: Context
  readonly buf: Buffer
  readonly mr: MemoryRegion
  readonly cq: CompletionQueue
  readonly qp: QueuePair
  readonly #o: PingpongOptions
  routs = 0

  private constructor(ctx: Context, o: PingpongOptions) {
    this.#o = o
    this.ctx = ctx
    // rc_pingpong: memset(buf, 0x7b, size); one buffer for every send and receive.
    this.buf = Buffer.alloc(Math.max(o.size, 1), 0x7b)
    this.mr = ctx.registerMemory(this.buf, { access: ['local-write'] })
    this.cq = ctx.createCq({ depth: o.rxDepth + 1 })
    this.qp = ctx.createQp({
      sendCq: this.cq, recvCq: this.cq,
      caps: { maxSendWr: 1, maxRecvWr: o.rxDepth, maxSendSge: 1, maxRecvSge: 1 },
      qos: { serviceLevel: o.sl },
    })
    this.qp.modify({ state: 'INIT', accessFlags: 0, portNum: o.ibPort, pkeyIndex: 0 })
    this.routs = this.postRecv(o.rxDepth)
    if (this.routs < o.rxDepth) throw new PingpongFailure(`Couldn't post receive (${this.routs})`)
  }

  static async open(o: PingpongOptions, address: string): Promise<PingpongEndpoint> {
    const ctx = await openSoftroceContext({ address, port: o.rocePort, ...(o.ibDev === undefined ? {} : { deviceName: o.ibDev }), ...(o.softroce === undefined ? {} : { softroce: o.softroce }) })
    try {
      return new PingpongEndpoint(ctx, o)
    } catch (err) {
      await ctx.close()
      throw err
    }
  }

  get dest(): PingpongDest {
    return { lid: 0, qpn: this.qp.qpn, psn: this.qp.localPsn, gid: addressToGid(this.ctx.info.address) }
  }

  #sge(): { addr: number; length: number; lkey: number }[] {
    return this.#o.size === 0 ? [] : [this.mr.slice(0, this.#o.size).toSge()]
  }

  /** pp_post_recv: posts up to n receives, returns how many went in. */
  postRecv(n: number): number {
    let i = 0
    for (; i < n; i++) {
      try {
        this.qp.postRecv({ wrId: RECV_WRID, sgList: this.#sge() })
      } catch {
        break
      }
    }
    return i
  }

  postSend(): void {
    this.qp.postSend({ wrId: SEND_WRID, opcode: 'SEND', sgList: this.#sge(), signaled: true })
  }

  /** pp_connect_ctx: RTR toward the peer's QPN/PSN/GID, then RTS with our PSN. */
  connect(remote: PingpongDest): void {
    let address: string
    try {
      address = peerRoceAddress(remote.gid, this.ctx.info.address, 'run rc_pingpong with -g <gid index>')
    } catch (err) {
      throw new PingpongFailure((err as Error).message)
    }
    this.qp.modify({
      state: 'RTR', remote: { address, port: this.#o.remoteRocePort ?? this.#o.rocePort },
      pathMtu: this.#o.mtu, destQpn: remote.qpn, rqPsn: remote.psn, maxDestRdAtomic: 1, minRnrTimer: 12,
    })
    this.qp.modify({ state: 'RTS', sqPsn: this.qp.localPsn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 })
  }

  /** The device's counters, when the provider keeps them (softroce's `counters.snapshot()`). */
  counters(): Record<string, unknown> | undefined {
    return deviceCounters(this.ctx)
  }

  async close(): Promise<void> {
    await this.ctx.close()
  }
}

/** The ping-pong loop of rc_pingpong's main() and parse_single_wc(); resolves with the elapsed µs. */
async function exchangeMessages(ep: PingpongEndpoint, o: PingpongOptions, client: boolean): Promise<number> {
  let pending = RECV_WRID
  if (client) {
    if (o.validate) for (let i = 0; i < o.size; i += PAGE_SIZE) ep.buf[i] = 0 // i / page_size % sizeof(char)
    ep.postSend()
    pending |= SEND_WRID
  }
  const start = performance.now()
  let rcnt = 0
  let scnt = 0
  const handle = (wc: WorkCompletion): void => {
    if (wc.status !== 'SUCCESS') {
      const [n, text] = wcStatus(wc)
      throw new PingpongFailure(`Failed status ${text} (${n}) for wr_id ${wc.wrId}`)
    }
    if (wc.wrId === SEND_WRID) {
      scnt++
    } else if (wc.wrId === RECV_WRID) {
      if (--ep.routs <= 1) {
        ep.routs += ep.postRecv(o.rxDepth - ep.routs)
        if (ep.routs < o.rxDepth) throw new PingpongFailure(`Couldn't post receive (${ep.routs})`)
      }
      rcnt++
    } else {
      throw new PingpongFailure(`Completion for unknown wr_id ${wc.wrId}`)
    }
    pending &= ~wc.wrId
    if (scnt < o.iters && pending === 0) {
      ep.postSend()
      pending = RECV_WRID | SEND_WRID
    }
  }
  while (rcnt < o.iters || scnt < o.iters) {
    const wcs = ep.cq.poll(2)
    if (wcs.length === 0) await ep.cq.waitReady()
    for (const wc of wcs) handle(wc)
  }
  return (performance.now() - start) * 1000
}

/** Runs one ping-pong as rc_pingpong does, printing what it prints; rejects with PingpongFailure. */
export async function runPingpong(o: PingpongOptions): Promise<PingpongResult> {
  const client = o.host !== undefined
  let ep: PingpongEndpoint | null = null
  const open = async (tcpLocalAddress: string): Promise<PingpongEndpoint> => {
    if (ep === null) {
      ep = await PingpongEndpoint.open(o, o.address ?? tcpLocalAddress)
      o.out(addressLine('local address: ', ep.dest))
    }
    return ep
  }
  try {
    // With --address the device exists before the exchange, as rc_pingpong's does.
    if (o.address !== undefined) await open(o.address)
    const { remote } = client
      ? await clientExchange(o.host!, o.tcpPort, async (local) => (await open(local)).dest)
      : await serverExchange(o.tcpPort, async (peer, local) => {
        const e = await open(local)
        e.connect(peer)
        return e.dest
      }, o.onListening)
    const e = (await open('')) as PingpongEndpoint
    o.out(addressLine('remote address:', remote))
    if (client) e.connect(remote)
    const usec = await exchangeMessages(e, o, client)
    o.out(summaryLines(o.size, o.iters, usec))
    const invalidPages: number[] = []
    if (!client && o.validate) {
      for (let i = 0; i < o.size; i += PAGE_SIZE) {
        if (e.buf[i] !== 0) {
          invalidPages.push(i / PAGE_SIZE)
          o.out(`invalid data in page ${i / PAGE_SIZE}\n`)
        }
      }
    }
    const counters = e.counters()
    return { local: e.dest, remote, bytes: o.size * o.iters * 2, iters: o.iters, usec, invalidPages, ...(counters === undefined ? {} : { counters }) }
  } finally {
    await (ep as PingpongEndpoint | null)?.close()
  }
}
