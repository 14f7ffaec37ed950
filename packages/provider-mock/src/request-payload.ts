/**
 * What a requester puts in a request packet: the gathered (or inline) bytes of a
 * SEND or WRITE, nothing for a READ, the two operands of an atomic. The local
 * SGEs a READ or atomic result will land in are checked now, so a bad one fails
 * the WR before anything is sent.
 */
import { Opcode } from '@rdma-session/provider-interface'
import { canScatter, gather } from './local-memory.js'
import type { MemoryOwner, MemoryTable } from './memory-region.js'
import { EMPTY_PAYLOAD } from './packet.js'
import { ATOMIC_OPERAND_BYTES, type SendWqe } from './work-queue-entries.js'

/** The request payload of `w`, or null on a local protection error. */
export function requestPayload(memory: MemoryTable, pd: MemoryOwner, w: SendWqe): Uint8Array | null {
  switch (w.opcode) {
    case Opcode.RDMA_READ:
      return canScatter(memory, pd, w.sges, w.length) ? EMPTY_PAYLOAD : null
    case Opcode.ATOMIC_CMP_AND_SWP:
    case Opcode.ATOMIC_FETCH_AND_ADD: {
      if (!canScatter(memory, pd, w.sges, 8)) return null
      // Compare/add then swap, 8 bytes each, little-endian.
      const b = Buffer.allocUnsafe(ATOMIC_OPERAND_BYTES)
      b.writeBigUInt64LE(w.compareAdd, 0)
      b.writeBigUInt64LE(w.swap, 8)
      return b
    }
    default:
      return w.inlineData ?? gather(memory, pd, w.sges, w.length)
  }
}
