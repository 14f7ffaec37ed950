/** A send work queue entry: the WR as the requester executes it, with its PSN range and progress. */
import { Opcode, WcStatus, InvalidArgumentError, type SendWorkRequest } from '@rdma-session/provider-interface'
import { EMPTY_SGL, resolveSgl, type ResolvedSgl } from '../memory/scatter-gather.js'
import type { MemoryTable, PdHandle } from '../memory/memory-table.js'

export const WqeKind = { SEND: 0, WRITE: 1, READ: 2, ATOMIC: 3 } as const
export type WqeKind = (typeof WqeKind)[keyof typeof WqeKind]

/** The largest message an RC WR may carry (2^31 bytes, as verbs devices report max_msg_sz). */
export const MAX_MESSAGE_BYTES = 2 ** 31

export class SendWqe {
  readonly wrId: number
  readonly opcode: Opcode
  readonly kind: WqeKind
  readonly signaled: boolean
  readonly withImm: boolean
  readonly imm: number
  readonly sgl: ResolvedSgl
  readonly length: number
  readonly remoteAddr: number
  readonly rkey: number
  readonly compareAdd: bigint
  readonly swap: bigint
  /** A local error found at post time, reported when the WQE reaches the head of the queue. */
  readonly error: WcStatus | null
  /** PSNs the WQE uses: request packets for SEND/WRITE, response packets for READ, 1 for atomics. */
  packets = 0
  firstPsn = -1
  lastPsn = -1
  /** The first packet went out (READ/atomic: counts against maxRdAtomic until done). */
  started = false
  /** READ: response packets placed so far (in order). */
  received = 0
  /** READ/atomic: the response is complete. */
  done = false
  /** READ: the PSN a retransmission was last requested from (so a burst of gaps asks once). */
  rewoundAt = -1
  /**
   * READ with selective repeat: responses placed past a gap, by response index modulo its length
   * (the window: they all lie in the piece being received); -1: free. Made at the first gap.
   */
  held: Int32Array | null = null

  constructor(wr: SendWorkRequest, sgl: ResolvedSgl, error: WcStatus | null, kind: WqeKind, length: number) {
    this.wrId = wr.wrId
    this.opcode = wr.opcode
    this.kind = kind
    this.signaled = wr.signaled
    this.withImm = wr.opcode === Opcode.SEND_WITH_IMM || wr.opcode === Opcode.RDMA_WRITE_WITH_IMM
    this.imm = (wr.imm ?? 0) >>> 0
    this.sgl = sgl
    this.length = length
    this.remoteAddr = wr.remoteAddr ?? 0
    this.rkey = (wr.rkey ?? 0) >>> 0
    // BigInt arithmetic is not free: only atomics carry these operands.
    this.compareAdd = kind === WqeKind.ATOMIC ? BigInt.asUintN(64, wr.compareAdd ?? 0n) : 0n
    this.swap = kind === WqeKind.ATOMIC ? BigInt.asUintN(64, wr.swap ?? 0n) : 0n
    this.error = error
  }

  get isReadOrAtomic(): boolean {
    return this.kind >= WqeKind.READ
  }

  /** PSN count for a path MTU. */
  setPackets(pmtu: number): void {
    this.packets = this.kind === WqeKind.ATOMIC ? 1 : Math.max(1, Math.ceil(this.length / pmtu))
  }
}

const KIND: Record<Opcode, WqeKind> = {
  SEND: WqeKind.SEND,
  SEND_WITH_IMM: WqeKind.SEND,
  RDMA_WRITE: WqeKind.WRITE,
  RDMA_WRITE_WITH_IMM: WqeKind.WRITE,
  RDMA_READ: WqeKind.READ,
  ATOMIC_CMP_AND_SWP: WqeKind.ATOMIC,
  ATOMIC_FETCH_AND_ADD: WqeKind.ATOMIC,
}

export interface WqeLimits {
  readonly maxSendSge: number
  readonly maxInlineData: number
}

/**
 * Builds the WQE for a posted WR. Malformed WRs (unknown opcode, too many SGEs,
 * too much inline data) throw, as ibv_post_send fails with EINVAL; local
 * protection and length errors become the WQE's error status.
 */
export function createSendWqe(wr: SendWorkRequest, limits: WqeLimits, table: MemoryTable, pd: PdHandle): SendWqe {
  const kind = KIND[wr.opcode]
  if (kind === undefined) throw new InvalidArgumentError(`unknown send opcode '${String(wr.opcode)}'`)
  const inline = wr.inlineData
  if (inline !== undefined) {
    if (kind >= WqeKind.READ) throw new InvalidArgumentError(`${wr.opcode} cannot carry inline data`)
    if (inline.length > limits.maxInlineData) throw new InvalidArgumentError(`${inline.length} bytes of inline data exceed the QP's maxInlineData (${limits.maxInlineData})`)
    const copy = Buffer.from(inline)
    return new SendWqe(wr, copy.length === 0 ? EMPTY_SGL : { views: [copy], length: copy.length }, null, kind, copy.length)
  }
  if (wr.sgList.length > limits.maxSendSge) throw new InvalidArgumentError(`${wr.sgList.length} SGEs exceed the QP's maxSendSge (${limits.maxSendSge})`)
  const sgl = resolveSgl(table, pd, wr.sgList, kind >= WqeKind.READ)
  if (sgl === null) return new SendWqe(wr, EMPTY_SGL, WcStatus.LOC_PROT_ERR, kind, 0)
  let error: WcStatus | null = null
  if (sgl.length > MAX_MESSAGE_BYTES) error = WcStatus.LOC_LEN_ERR
  if (kind === WqeKind.ATOMIC && sgl.length !== 8) error = WcStatus.LOC_LEN_ERR
  if (kind >= WqeKind.WRITE && (wr.rkey === undefined || wr.remoteAddr === undefined)) throw new InvalidArgumentError(`${wr.opcode} needs remoteAddr and rkey`)
  if (kind === WqeKind.ATOMIC && wr.compareAdd === undefined) throw new InvalidArgumentError(`${wr.opcode} needs compareAdd`)
  if (wr.opcode === Opcode.ATOMIC_CMP_AND_SWP && wr.swap === undefined) throw new InvalidArgumentError('ATOMIC_CMP_AND_SWP needs swap')
  return new SendWqe(wr, error === null ? sgl : EMPTY_SGL, error, kind, error === null ? (kind === WqeKind.ATOMIC ? 8 : sgl.length) : 0)
}
