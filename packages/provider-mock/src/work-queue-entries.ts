/**
 * Work queue entries: the provider's own copy of a posted WR (callers may reuse
 * their WR objects and, for inline sends, their buffers as soon as post returns),
 * checked the way ibv_post_send / ibv_post_recv check a WR before queuing it.
 */
import { InvalidArgumentError, Opcode, type RecvWorkRequest, type SendWorkRequest, type Sge, type WcStatus } from '@rdma-session/provider-interface'
import { sgeBytes } from './local-memory.js'

/** Largest message length RC allows (2^31 bytes). */
export const MAX_MESSAGE_BYTES = 2 ** 31

/** Bytes of an atomic request's operands on the wire (compare/add and swap, 8 bytes each). */
export const ATOMIC_OPERAND_BYTES = 16

const OPCODES = new Set<string>(Object.values(Opcode))

export class SendWqe {
  /** PSN of the first wire packet; the message spans `packets` PSNs. */
  psn = 0
  packets = 1
  /** Set when the local SGEs failed their checks: the WR completes with this status when it reaches the head. */
  localError: WcStatus | null = null

  constructor(
    readonly wrId: number,
    readonly opcode: Opcode,
    readonly signaled: boolean,
    readonly sges: readonly Sge[],
    /** Message length: payload for SEND/WRITE, bytes to read for READ, 8 for atomics. */
    readonly length: number,
    readonly inlineData: Uint8Array | null,
    readonly remoteAddr: number,
    readonly rkey: number,
    readonly imm: number | undefined,
    readonly compareAdd: bigint,
    readonly swap: bigint,
  ) {}

  /** READ and atomics complete with data from the response, never from a plain ACK. */
  get needsResponse(): boolean {
    return this.opcode === Opcode.RDMA_READ || this.opcode === Opcode.ATOMIC_CMP_AND_SWP || this.opcode === Opcode.ATOMIC_FETCH_AND_ADD
  }

  /** Request bytes that go on the wire (READ requests carry no payload). */
  get requestBytes(): number {
    if (this.opcode === Opcode.RDMA_READ) return 0
    if (this.opcode === Opcode.ATOMIC_CMP_AND_SWP || this.opcode === Opcode.ATOMIC_FETCH_AND_ADD) return ATOMIC_OPERAND_BYTES
    return this.length
  }
}

export class RecvWqe {
  constructor(
    readonly wrId: number,
    readonly sges: readonly Sge[],
    readonly capacity: number,
  ) {}
}

function checkSges(sges: unknown, max: number, what: string): readonly Sge[] {
  if (!Array.isArray(sges)) throw new InvalidArgumentError(`${what}: sgList must be an array of { addr, length, lkey }`)
  if (sges.length > max) throw new InvalidArgumentError(`${what}: ${sges.length} SGEs exceed the QP's limit of ${max}; create the QP with a larger maxSge`, { sges: sges.length, max })
  for (const s of sges as Sge[]) {
    if (s === null || typeof s !== 'object' || !Number.isSafeInteger(s.addr) || !Number.isSafeInteger(s.length) || s.length < 0 || !Number.isInteger(s.lkey)) {
      throw new InvalidArgumentError(`${what}: each SGE needs an integer addr, a non-negative length and an lkey`)
    }
  }
  return sges.length <= 1 ? (sges as Sge[]) : (sges as Sge[]).slice()
}

function u32(v: number | undefined, name: string): number {
  if (v === undefined) return 0
  if (!Number.isInteger(v)) throw new InvalidArgumentError(`${name} must be an integer, got ${String(v)}`)
  return v >>> 0
}

/** Checks `wr` and copies what the provider needs; throws InvalidArgumentError like ibv_post_send's EINVAL. */
export function sendWqeFrom(wr: SendWorkRequest, maxSge: number, maxInline: number): SendWqe {
  const opcode = wr.opcode
  if (!OPCODES.has(opcode)) throw new InvalidArgumentError(`unknown opcode '${String(opcode)}'`)
  const isAtomic = opcode === Opcode.ATOMIC_CMP_AND_SWP || opcode === Opcode.ATOMIC_FETCH_AND_ADD
  const isRdma = isAtomic || opcode === Opcode.RDMA_WRITE || opcode === Opcode.RDMA_WRITE_WITH_IMM || opcode === Opcode.RDMA_READ
  let inline: Uint8Array | null = null
  let sges: readonly Sge[] = []
  let length: number
  if (wr.inlineData !== undefined) {
    if (!(wr.inlineData instanceof Uint8Array)) throw new InvalidArgumentError('inlineData must be a Uint8Array')
    if (isAtomic || opcode === Opcode.RDMA_READ) throw new InvalidArgumentError(`inline data is only for SEND and RDMA_WRITE opcodes, not ${opcode}`)
    if (wr.inlineData.length > maxInline) {
      throw new InvalidArgumentError(`${wr.inlineData.length} inline bytes exceed the QP's maxInlineData ${maxInline}`, { length: wr.inlineData.length, maxInline })
    }
    inline = wr.inlineData.slice()
    length = inline.length
  } else {
    sges = checkSges(wr.sgList, maxSge, opcode)
    length = sgeBytes(sges)
  }
  if (isRdma) {
    if (!Number.isSafeInteger(wr.remoteAddr) || wr.remoteAddr! < 0) throw new InvalidArgumentError(`${opcode} needs remoteAddr (a non-negative integer)`)
    if (!Number.isInteger(wr.rkey)) throw new InvalidArgumentError(`${opcode} needs the target region's rkey`)
  }
  let compareAdd = 0n
  let swap = 0n
  if (isAtomic) {
    if (typeof wr.compareAdd !== 'bigint') throw new InvalidArgumentError(`${opcode} needs compareAdd as a bigint`)
    if (opcode === Opcode.ATOMIC_CMP_AND_SWP && typeof wr.swap !== 'bigint') throw new InvalidArgumentError('ATOMIC_CMP_AND_SWP needs swap as a bigint')
    compareAdd = BigInt.asUintN(64, wr.compareAdd)
    swap = BigInt.asUintN(64, wr.swap ?? 0n)
  }
  const hasImm = opcode === Opcode.SEND_WITH_IMM || opcode === Opcode.RDMA_WRITE_WITH_IMM
  const wqe = new SendWqe(
    wr.wrId,
    opcode,
    wr.signaled !== false,
    sges,
    length,
    inline,
    isRdma ? wr.remoteAddr! : 0,
    isRdma ? wr.rkey! >>> 0 : 0,
    hasImm ? u32(wr.imm, 'imm') : undefined,
    compareAdd,
    swap,
  )
  if (length > MAX_MESSAGE_BYTES || (isAtomic && length !== 8)) wqe.localError = 'LOC_LEN_ERR'
  return wqe
}

export function recvWqeFrom(wr: RecvWorkRequest, maxSge: number): RecvWqe {
  const sges = checkSges(wr.sgList, maxSge, 'receive')
  return new RecvWqe(wr.wrId, sges, sgeBytes(sges))
}
