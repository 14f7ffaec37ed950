/** Fills the outgoing packet record for packet `k` of a send WQE: opcode by position, RETH, ImmDt, AtomicETH, payload views. */
import { gatherViews } from '../memory/scatter-gather.js'
import { RcOpcode } from '../wire/opcodes.js'
import type { RocePacket } from '../wire/packet.js'
import { WqeKind, type SendWqe } from './send-wqe.js'

/** Opcode offsets from SEND_FIRST / RDMA_WRITE_FIRST. */
const FIRST = 0
const MIDDLE = 1
const LAST = 2
const ONLY = 4

/**
 * Sets `pkt`'s headers and `parts` for packet `k` of `w` (READ: the request for `readChunk`
 * responses from response `k` on; atomics: the one request) and returns the payload length. `ackReq` is the
 * AckReq bit the caller wants besides the one READ/atomics always carry and the one on the last
 * packet of each message (of signaled messages only, when `lazyAcks`).
 */
export function fillRequestPacket(w: SendWqe, k: number, psn: number, pmtu: number, readChunk: number, ackReq: boolean, lazyAcks: boolean, pkt: RocePacket, parts: Uint8Array[]): number {
  const bth = pkt.bth
  bth.psn = psn
  bth.solicited = false
  pkt.reth = undefined
  pkt.immDt = undefined
  pkt.atomicEth = undefined
  parts.length = 0
  if (w.kind === WqeKind.READ) {
    const offset = k * pmtu
    bth.opcode = RcOpcode.RDMA_READ_REQUEST
    bth.ackReq = true
    pkt.reth = { va: BigInt(w.remoteAddr + offset), rkey: w.rkey, dmaLength: Math.min(w.length - offset, readChunk * pmtu) }
    return 0
  }
  if (w.kind === WqeKind.ATOMIC) {
    const cas = w.opcode === 'ATOMIC_CMP_AND_SWP'
    bth.opcode = cas ? RcOpcode.COMPARE_SWAP : RcOpcode.FETCH_ADD
    bth.ackReq = true
    pkt.atomicEth = { va: BigInt(w.remoteAddr), rkey: w.rkey, swapAdd: cas ? w.swap : w.compareAdd, compare: cas ? w.compareAdd : 0n }
    return 0
  }
  const n = w.packets
  const offset = k * pmtu
  const len = Math.min(pmtu, w.length - offset)
  const last = k === n - 1
  const pos = n === 1 ? ONLY : k === 0 ? FIRST : last ? LAST : MIDDLE
  bth.opcode = (w.kind === WqeKind.SEND ? RcOpcode.SEND_FIRST : RcOpcode.RDMA_WRITE_FIRST) + pos + (last && w.withImm ? 1 : 0)
  // With lazyAcks, unsignaled WRs do not ask for an ACK of their own (a softroce responder ACKs
  // them within timers.ackDelayMs): a stream of unsignaled SENDs then needs few ACK packets.
  bth.ackReq = (last && (w.signaled || !lazyAcks)) || ackReq
  bth.solicited = last && w.kind === WqeKind.SEND && w.withImm
  if (w.kind === WqeKind.WRITE && k === 0) pkt.reth = { va: BigInt(w.remoteAddr), rkey: w.rkey, dmaLength: w.length }
  if (last && w.withImm) pkt.immDt = w.imm
  if (len > 0) gatherViews(w.sgl, offset, len, parts)
  return len
}
