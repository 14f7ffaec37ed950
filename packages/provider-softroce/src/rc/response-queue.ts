/**
 * The responder's ordered queue of outgoing responses: READ responses (sent
 * one packet at a time through the device scheduler) and ACK/NAK/atomic ACKs
 * queued behind them, so no acknowledgment overtakes a READ response it implies.
 */
import { FifoQueue, type ReadReplay } from '@rdma-session/provider-interface'
import { RcOpcode } from '../wire/opcodes.js'
import type { RocePacket } from '../wire/packet.js'
import { psnAdd } from '@rdma-session/rc-engine'

export interface ReadResponseJob {
  readonly kind: 'read'
  /** PSN of the first response packet. */
  readonly psn: number
  /** The bytes to send (already checked against rkey, bounds and access). */
  readonly data: Uint8Array
  readonly packets: number
  /** Next packet to send. */
  next: number
  /** A new request (not the re-execution of a duplicate): counts against max_dest_rd_atomic. */
  readonly fresh: boolean
  /** The re-execution of a saved READ: cleared when its last response is sent (null: a new request). */
  readonly replay: ReadReplay | null
}

export interface ControlJob {
  readonly kind: 'control'
  readonly opcode: number
  readonly psn: number
  readonly syndrome: number
  readonly msn: number
  /** ATOMIC_ACKNOWLEDGE: the original value. */
  readonly orig: bigint
  /** A SACK block after the AETH (selective repeat's SACK NAK), or null. */
  readonly ext: Uint8Array | null
}

export type ResponseJob = ReadResponseJob | ControlJob

export class ResponseQueue {
  readonly #jobs = new FifoQueue<ResponseJob>()
  /**
   * READs of new requests with responses still to send. A requester counts a READ against its
   * max_rd_atomic until the last response arrives, so a compliant one never has more of these
   * than the responder's max_dest_rd_atomic.
   */
  freshReads = 0

  get empty(): boolean {
    return this.#jobs.empty
  }

  get length(): number {
    return this.#jobs.length
  }

  push(job: ResponseJob): void {
    if (job.kind === 'read' && job.fresh) this.freshReads++
    this.#jobs.push(job)
  }

  peek(): ResponseJob | undefined {
    return this.#jobs.peek()
  }

  shift(): void {
    const job = this.#jobs.shift()
    if (job !== undefined && job.kind === 'read' && job.fresh) this.freshReads--
  }

  clear(): void {
    this.#jobs.clear()
    this.freshReads = 0
  }
}

/** Sets `pkt` and `parts` for response packet `k` of a READ job (AETH on FIRST/LAST/ONLY); returns the payload length. */
export function fillReadResponse(job: ReadResponseJob, k: number, pmtu: number, ackSyndrome: number, msn: number, pkt: RocePacket, parts: Uint8Array[]): number {
  const n = job.packets
  const last = k === n - 1
  pkt.bth.opcode = n === 1 ? RcOpcode.RDMA_READ_RESPONSE_ONLY : k === 0 ? RcOpcode.RDMA_READ_RESPONSE_FIRST : last ? RcOpcode.RDMA_READ_RESPONSE_LAST : RcOpcode.RDMA_READ_RESPONSE_MIDDLE
  pkt.bth.psn = psnAdd(job.psn, k)
  pkt.bth.ackReq = false
  pkt.reth = undefined
  pkt.atomicAckEth = undefined
  pkt.aeth = k === 0 || last ? { syndrome: ackSyndrome, msn } : undefined
  parts.length = 0
  const off = k * pmtu
  const len = Math.min(pmtu, job.data.length - off)
  if (len > 0) parts.push(job.data.subarray(off, off + len))
  return len
}
