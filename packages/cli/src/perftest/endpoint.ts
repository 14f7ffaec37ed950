/**
 * perftest's resources on softroce (ctx_init, set_up_connection, ctx_connect): one buffer and one
 * MR for all QPs, laid out as perftest lays it out, 2 × qps blocks of
 * INC(BUFF_SIZE(size, cycle_buffer), cache_line) bytes, where QP i sends from block i and names
 * block qps + i as its target (vaddr); one send and one receive CQ; RC QPs connected with
 * perftest's attributes (RTR: max_dest_rd_atomic = our outstanding reads, min RNR timer 12; RTS:
 * timeout -u, retry 7, RNR retry 7, max_rd_atomic = the peer's outstanding reads).
 */
import { AccessFlag, type CompletionQueue, type CreateQpOptions, type Context, type MemoryRegion, type PathMtu, type QueuePair } from '@rdma-session/core'
import { addressToGid, peerRoceAddress } from '../oob/gid.js'
import { openSoftroceContext, type SoftroceFactory } from '../oob/softroce.js'
import type { PerftestDest } from './wire.js'

/** Linux cma.c: CMA_IBOE_PACKET_LIFETIME (16) + 1, the ACK timeout of rdma_cm's RoCE QPs (cm.c cm_init_av_by_path). */
export const RDMA_CM_ROCE_ACK_TIMEOUT = 17
/** MIN_RNR_TIMER in perftest_resources.h. */
const MIN_RNR_TIMER = 12
/** The outstanding RDMA READ/atomic requests softroce takes as a responder (its default). */
export const SOFTROCE_OUT_READS = 16

export interface EndpointOptions {
  readonly address: string
  readonly rocePort: number
  readonly remoteRocePort?: number
  readonly ibDev?: string
  readonly ibPort: number
  readonly softroce?: SoftroceFactory
  readonly qps: number
  readonly txDepth: number
  readonly rxDepth: number
  /** The largest message of the run (-s, or 2^23 with -a). */
  readonly maxSize: number
  readonly cycleBuffer: number
  readonly cacheLine: number
  readonly sl: number
  readonly qpTimeout: number
  /** -R: the QPs come from rdma_cm connections (adopt), already in RTS; connect() has nothing to do. */
  readonly viaCm?: boolean
}

const roundUp = (v: number, a: number): number => Math.ceil(v / a) * a

/** INC(size, cache_line_size): how far apart consecutive small WRs land. */
export const inc = (size: number, cacheLine: number): number => (size > cacheLine ? roundUp(size, cacheLine) : cacheLine)

export class PerftestEndpoint {
  readonly ctx: Context
  readonly o: EndpointOptions
  /** INC(BUFF_SIZE(size, cycle_buffer), cache_line): one QP's half-block. */
  readonly block: number
  readonly buf: Buffer
  readonly mr: MemoryRegion
  readonly sendCq: CompletionQueue
  readonly recvCq: CompletionQueue
  readonly qps: QueuePair[] = []

  readonly #access = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC

  private constructor(ctx: Context, o: EndpointOptions) {
    this.ctx = ctx
    this.o = o
    this.block = inc(Math.max(o.maxSize, o.cycleBuffer), o.cacheLine)
    this.buf = Buffer.alloc(this.block * 2 * o.qps)
    this.mr = ctx.registerMemory(this.buf, { access: ['local-write', 'remote-write', 'remote-read', 'remote-atomic'] })
    this.sendCq = ctx.createCq({ depth: o.txDepth * o.qps + 1 })
    this.recvCq = ctx.createCq({ depth: o.rxDepth * o.qps + 1 })
    if (o.viaCm === true) return
    for (let i = 0; i < o.qps; i++) {
      const qp = ctx.createQp(this.qpOptions)
      qp.modify({ state: 'INIT', accessFlags: this.#access, portNum: o.ibPort, pkeyIndex: 0 })
      this.qps.push(qp)
    }
  }

  /** How a test QP is made (perftest's create_qp_main attributes). */
  get qpOptions(): CreateQpOptions {
    return {
      sendCq: this.sendCq, recvCq: this.recvCq,
      caps: { maxSendWr: this.o.txDepth, maxRecvWr: this.o.rxDepth, maxSendSge: 1, maxRecvSge: 1 },
      qos: { serviceLevel: this.o.sl },
    }
  }

  /**
   * The same for rdma_cm, which moves the QP on from INIT itself; the active side announces
   * `pathMtu` and the ACK timeout Linux rdma_cm gives RoCE QPs (packet lifetime 16, plus one: 17,
   * 537 ms), as perftest's -R QPs get it, not -u.
   */
  cmQpOptions(pathMtu: PathMtu): { qp: CreateQpOptions; accessFlags: number; pathMtu: PathMtu; ackTimeout: number } {
    return { qp: this.qpOptions, accessFlags: this.#access, pathMtu, ackTimeout: RDMA_CM_ROCE_ACK_TIMEOUT }
  }

  /** -R: a test QP of an rdma_cm connection, in RTS. */
  adopt(qp: QueuePair): void {
    this.qps.push(qp)
  }

  static async open(o: EndpointOptions): Promise<PerftestEndpoint> {
    return PerftestEndpoint.onContext(await PerftestEndpoint.openContext(o), o)
  }

  static openContext(o: Pick<EndpointOptions, 'address' | 'rocePort' | 'ibDev' | 'softroce'>): Promise<Context> {
    return openSoftroceContext({ address: o.address, port: o.rocePort, ...(o.ibDev === undefined ? {} : { deviceName: o.ibDev }), ...(o.softroce === undefined ? {} : { softroce: o.softroce }) })
  }

  /** The run's resources on `ctx` (which the endpoint then owns: close() closes it). */
  static async onContext(ctx: Context, o: EndpointOptions): Promise<PerftestEndpoint> {
    try {
      return new PerftestEndpoint(ctx, o)
    } catch (err) {
      await ctx.close()
      throw err
    }
  }

  get deviceName(): string {
    return this.ctx.info.name
  }

  /** Offset in `buf` of QP i's source block and of its target block. */
  sourceOffset(i: number): number {
    return i * this.block
  }

  targetOffset(i: number): number {
    return (this.o.qps + i) * this.block
  }

  /** set_up_connection: what QP i tells the peer. */
  dest(i: number): PerftestDest {
    return {
      lid: 0, outReads: SOFTROCE_OUT_READS, qpn: this.qps[i]!.qpn, psn: this.qps[i]!.localPsn, rkey: this.mr.rkey,
      vaddr: this.mr.addr + this.targetOffset(i), gid: addressToGid(this.ctx.info.address), srqn: 0,
    }
  }

  /** ctx_connect: every QP to RTR toward its peer, and on to RTS when `rts` (clients, latency tests). */
  connect(remotes: readonly PerftestDest[], mtu: PathMtu, rts: boolean): void {
    if (this.o.viaCm === true) return
    this.qps.forEach((qp, i) => {
      const r = remotes[i]!
      const address = peerRoceAddress(r.gid, this.ctx.info.address, 'run perftest with -x <gid index>')
      qp.modify({
        state: 'RTR', remote: { address, port: this.o.remoteRocePort ?? this.o.rocePort },
        pathMtu: mtu, destQpn: r.qpn, rqPsn: r.psn, maxDestRdAtomic: SOFTROCE_OUT_READS, minRnrTimer: MIN_RNR_TIMER,
      })
      if (rts) qp.modify({ state: 'RTS', sqPsn: qp.localPsn, timeout: this.o.qpTimeout, retryCnt: 7, rnrRetry: 7, maxRdAtomic: Math.max(1, Math.min(255, r.outReads)) })
    })
  }

  async close(): Promise<void> {
    await this.ctx.close()
  }
}
