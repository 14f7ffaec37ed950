/** Verbs-level enumerations: opcodes, QP states, completion statuses and memory access flags. */

export const Opcode = {
  SEND: 'SEND',
  SEND_WITH_IMM: 'SEND_WITH_IMM',
  RDMA_WRITE: 'RDMA_WRITE',
  RDMA_WRITE_WITH_IMM: 'RDMA_WRITE_WITH_IMM',
  RDMA_READ: 'RDMA_READ',
  ATOMIC_CMP_AND_SWP: 'ATOMIC_CMP_AND_SWP',
  ATOMIC_FETCH_AND_ADD: 'ATOMIC_FETCH_AND_ADD',
} as const
export type Opcode = (typeof Opcode)[keyof typeof Opcode]

/** Opcodes reported by receive completions. */
export const RecvOpcode = {
  RECV: 'RECV',
  RECV_RDMA_WITH_IMM: 'RECV_RDMA_WITH_IMM',
} as const
export type RecvOpcode = (typeof RecvOpcode)[keyof typeof RecvOpcode]

export type CompletionOpcode = Opcode | RecvOpcode

export const QpState = {
  RESET: 'RESET',
  INIT: 'INIT',
  RTR: 'RTR',
  RTS: 'RTS',
  SQD: 'SQD',
  SQE: 'SQE',
  ERR: 'ERR',
} as const
export type QpState = (typeof QpState)[keyof typeof QpState]

/** Work completion statuses, named after `enum ibv_wc_status`. */
export const WcStatus = {
  SUCCESS: 'SUCCESS',
  LOC_LEN_ERR: 'LOC_LEN_ERR',
  LOC_QP_OP_ERR: 'LOC_QP_OP_ERR',
  LOC_PROT_ERR: 'LOC_PROT_ERR',
  WR_FLUSH_ERR: 'WR_FLUSH_ERR',
  BAD_RESP_ERR: 'BAD_RESP_ERR',
  LOC_ACCESS_ERR: 'LOC_ACCESS_ERR',
  REM_INV_REQ_ERR: 'REM_INV_REQ_ERR',
  REM_ACCESS_ERR: 'REM_ACCESS_ERR',
  REM_OP_ERR: 'REM_OP_ERR',
  RETRY_EXC_ERR: 'RETRY_EXC_ERR',
  RNR_RETRY_EXC_ERR: 'RNR_RETRY_EXC_ERR',
  REM_ABORT_ERR: 'REM_ABORT_ERR',
  FATAL_ERR: 'FATAL_ERR',
  GENERAL_ERR: 'GENERAL_ERR',
} as const
export type WcStatus = (typeof WcStatus)[keyof typeof WcStatus]

/** Memory access flags, as bits so providers can test them cheaply. */
export const AccessFlag = {
  LOCAL_WRITE: 1,
  REMOTE_WRITE: 2,
  REMOTE_READ: 4,
  REMOTE_ATOMIC: 8,
} as const

export type AccessName = 'local-write' | 'remote-write' | 'remote-read' | 'remote-atomic'

const accessBits: Record<AccessName, number> = {
  'local-write': AccessFlag.LOCAL_WRITE,
  'remote-write': AccessFlag.REMOTE_WRITE,
  'remote-read': AccessFlag.REMOTE_READ,
  'remote-atomic': AccessFlag.REMOTE_ATOMIC,
}

/** Path MTUs a RoCE QP may use. */
export const PATH_MTUS = [256, 512, 1024, 2048, 4096] as const
export type PathMtu = (typeof PATH_MTUS)[number]

export function accessNamesToBits(names: readonly AccessName[]): number {
  let bits = 0
  for (const name of names) {
    const bit = accessBits[name]
    if (bit === undefined) throw new TypeError(`unknown access flag '${String(name)}'`)
    bits |= bit
  }
  return bits
}

export function accessBitsToNames(bits: number): AccessName[] {
  return (Object.keys(accessBits) as AccessName[]).filter((n) => (bits & accessBits[n]) !== 0)
}
