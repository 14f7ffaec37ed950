/**
 * RC transport opcodes (IBTA vol. 1, 9.2 table 38; kernel rxe_opcode.c) and, per opcode, which
 * extension headers follow the BTH, whether it carries payload, and its place in a message.
 */

/** RC opcodes (transport bits 000, so the opcode byte is the operation code). */
export const RcOpcode = {
  SEND_FIRST: 0x00,
  SEND_MIDDLE: 0x01,
  SEND_LAST: 0x02,
  SEND_LAST_WITH_IMMEDIATE: 0x03,
  SEND_ONLY: 0x04,
  SEND_ONLY_WITH_IMMEDIATE: 0x05,
  RDMA_WRITE_FIRST: 0x06,
  RDMA_WRITE_MIDDLE: 0x07,
  RDMA_WRITE_LAST: 0x08,
  RDMA_WRITE_LAST_WITH_IMMEDIATE: 0x09,
  RDMA_WRITE_ONLY: 0x0a,
  RDMA_WRITE_ONLY_WITH_IMMEDIATE: 0x0b,
  RDMA_READ_REQUEST: 0x0c,
  RDMA_READ_RESPONSE_FIRST: 0x0d,
  RDMA_READ_RESPONSE_MIDDLE: 0x0e,
  RDMA_READ_RESPONSE_LAST: 0x0f,
  RDMA_READ_RESPONSE_ONLY: 0x10,
  ACKNOWLEDGE: 0x11,
  ATOMIC_ACKNOWLEDGE: 0x12,
  COMPARE_SWAP: 0x13,
  FETCH_ADD: 0x14,
  SEND_LAST_WITH_INVALIDATE: 0x16,
  SEND_ONLY_WITH_INVALIDATE: 0x17,
} as const
export type RcOpcodeName = keyof typeof RcOpcode
export type RcOpcode = (typeof RcOpcode)[RcOpcodeName]

/** Extension headers, in the order they follow the BTH. */
export type ExtHeader = 'RETH' | 'AETH' | 'ImmDt' | 'AtomicETH' | 'AtomicAckETH' | 'IETH'

/** Sizes in bytes of the RoCEv2 transport headers and trailer. */
export const HeaderSize = {
  BTH: 12,
  RETH: 16,
  AETH: 4,
  ImmDt: 4,
  AtomicETH: 28,
  AtomicAckETH: 8,
  IETH: 4,
  ICRC: 4,
} as const

export type MessagePosition = 'first' | 'middle' | 'last' | 'only'
export type RcOperation = 'send' | 'write' | 'read-request' | 'read-response' | 'ack' | 'atomic' | 'atomic-ack'

export interface OpcodeInfo {
  readonly opcode: number
  /** The RcOpcode key, e.g. 'SEND_ONLY'. */
  readonly name: RcOpcodeName
  /** Extension headers after the BTH, in wire order. */
  readonly headers: readonly ExtHeader[]
  /** True if the packet carries a payload field (possibly empty). */
  readonly hasPayload: boolean
  /** True for requester-to-responder packets (sends, writes, read requests, atomics). */
  readonly isRequest: boolean
  readonly position: MessagePosition
  readonly operation: RcOperation
  /** BTH plus extension headers, in bytes. */
  readonly headerLength: number
  /** Bit set of the F_* flags below; used by the codec to avoid array walks per packet. */
  readonly flags: number
}

/** Flag bits of OpcodeInfo.flags. */
export const F_RETH = 1
export const F_AETH = 2
export const F_IMMDT = 4
export const F_ATOMIC_ETH = 8
export const F_ATOMIC_ACK_ETH = 16
export const F_IETH = 32
export const F_PAYLOAD = 64

const HEADER_FLAG: Record<ExtHeader, number> = {
  RETH: F_RETH,
  AETH: F_AETH,
  ImmDt: F_IMMDT,
  AtomicETH: F_ATOMIC_ETH,
  AtomicAckETH: F_ATOMIC_ACK_ETH,
  IETH: F_IETH,
}

// name, headers, payload, request, position, operation
type Row = [RcOpcodeName, ExtHeader[], boolean, boolean, MessagePosition, RcOperation]
const ROWS: Row[] = [
  ['SEND_FIRST', [], true, true, 'first', 'send'],
  ['SEND_MIDDLE', [], true, true, 'middle', 'send'],
  ['SEND_LAST', [], true, true, 'last', 'send'],
  ['SEND_LAST_WITH_IMMEDIATE', ['ImmDt'], true, true, 'last', 'send'],
  ['SEND_ONLY', [], true, true, 'only', 'send'],
  ['SEND_ONLY_WITH_IMMEDIATE', ['ImmDt'], true, true, 'only', 'send'],
  ['RDMA_WRITE_FIRST', ['RETH'], true, true, 'first', 'write'],
  ['RDMA_WRITE_MIDDLE', [], true, true, 'middle', 'write'],
  ['RDMA_WRITE_LAST', [], true, true, 'last', 'write'],
  ['RDMA_WRITE_LAST_WITH_IMMEDIATE', ['ImmDt'], true, true, 'last', 'write'],
  ['RDMA_WRITE_ONLY', ['RETH'], true, true, 'only', 'write'],
  ['RDMA_WRITE_ONLY_WITH_IMMEDIATE', ['RETH', 'ImmDt'], true, true, 'only', 'write'],
  ['RDMA_READ_REQUEST', ['RETH'], false, true, 'only', 'read-request'],
  ['RDMA_READ_RESPONSE_FIRST', ['AETH'], true, false, 'first', 'read-response'],
  ['RDMA_READ_RESPONSE_MIDDLE', [], true, false, 'middle', 'read-response'],
  ['RDMA_READ_RESPONSE_LAST', ['AETH'], true, false, 'last', 'read-response'],
  ['RDMA_READ_RESPONSE_ONLY', ['AETH'], true, false, 'only', 'read-response'],
  ['ACKNOWLEDGE', ['AETH'], false, false, 'only', 'ack'],
  ['ATOMIC_ACKNOWLEDGE', ['AETH', 'AtomicAckETH'], false, false, 'only', 'atomic-ack'],
  ['COMPARE_SWAP', ['AtomicETH'], false, true, 'only', 'atomic'],
  ['FETCH_ADD', ['AtomicETH'], false, true, 'only', 'atomic'],
  ['SEND_LAST_WITH_INVALIDATE', ['IETH'], true, true, 'last', 'send'],
  ['SEND_ONLY_WITH_INVALIDATE', ['IETH'], true, true, 'only', 'send'],
]

/** Indexed by the opcode byte; undefined for opcodes that are not RC opcodes. */
export const OPCODE_TABLE: readonly (OpcodeInfo | undefined)[] = (() => {
  const table: (OpcodeInfo | undefined)[] = new Array<OpcodeInfo | undefined>(256).fill(undefined)
  for (const [name, headers, hasPayload, isRequest, position, operation] of ROWS) {
    const opcode = RcOpcode[name]
    let flags = hasPayload ? F_PAYLOAD : 0
    let headerLength: number = HeaderSize.BTH
    for (const h of headers) {
      flags |= HEADER_FLAG[h]
      headerLength += HeaderSize[h]
    }
    table[opcode] = Object.freeze({
      opcode,
      name,
      headers: Object.freeze([...headers]),
      hasPayload,
      isRequest,
      position,
      operation,
      headerLength,
      flags,
    })
  }
  return Object.freeze(table)
})()

/** What follows the BTH for an RC opcode; undefined for anything else (UC/UD/RD/CNP, reserved). */
export function opcodeInfo(op: number): OpcodeInfo | undefined {
  return OPCODE_TABLE[op]
}

/** The RcOpcode name of an opcode, or '0x..' for one this layer does not know. */
export function opcodeName(op: number): string {
  return OPCODE_TABLE[op]?.name ?? `0x${(op >>> 0).toString(16).padStart(2, '0')}`
}
