/**
 * The receive side of an RC QP: checks each request's PSN against the expected
 * PSN (duplicates are re-acknowledged without re-executing; a duplicate READ is
 * read again and a duplicate atomic answered from its saved result only when it
 * matches one of the saved requests, max_dest_rd_atomic of them, else dropped;
 * a gap gets one sequence NAK), checks rkey, bounds and access
 * before touching memory, executes the request on registered memory, consumes
 * receive WRs, and answers with ACK, NAK, READ response or atomic acknowledge.
 */
import { AccessFlag, FifoQueue, Opcode, RecvOpcode, ResponderResources, WcStatus } from '@rdma-session/provider-interface'
import type { DropReason } from './fabric-stats.js'
import { scatter } from './local-memory.js'
import type { MockQp } from './mock-qp.js'
import { EMPTY_PAYLOAD, Packet, type NakSyndrome, type ResponseOpcode } from './packet.js'
import { psnAdd, psnDiff, rnrDelayMs } from '@rdma-session/rc-engine'
import type { RecvWqe } from './work-queue-entries.js'

/** Saved READ/atomic requests before connect() sets the QP's max_dest_rd_atomic. */
const DEFAULT_RESOURCES = 16
const U64_MASK = (1n << 64n) - 1n

export class Responder {
  /** PSN of the next new request. */
  expectedPsn = 0
  readonly #recvs = new FifoQueue<RecvWqe>()
  #nakSent = false
  /** Saved READ and atomic requests: what a duplicate may read again or replay. */
  #resources = new ResponderResources(DEFAULT_RESOURCES)

  constructor(private readonly qp: MockQp) {}

  /** At RTR: the first PSN expected and how many READ/atomic requests are saved (max_dest_rd_atomic). */
  connect(rqPsn: number, maxDestRdAtomic: number): void {
    this.expectedPsn = rqPsn
    this.#resources = new ResponderResources(maxDestRdAtomic)
  }

  get outstanding(): number {
    return this.#recvs.length
  }

  post(w: RecvWqe): void {
    this.#recvs.push(w)
  }

  /** Completes every posted receive with WR_FLUSH_ERR, in post order. */
  flush(): void {
    while (!this.#recvs.empty) this.#completeRecv(WcStatus.WR_FLUSH_ERR, RecvOpcode.RECV, 0, undefined)
  }

  /** Handles a request; returns why it was dropped, or null. */
  onRequest(packet: Packet, data: Uint8Array): DropReason | null {
    const d = psnDiff(packet.psn, this.expectedPsn)
    if (d < 0) return this.#onDuplicate(packet)
    if (d > 0) {
      // A gap: one sequence NAK until the expected PSN arrives.
      if (!this.#nakSent) {
        this.#nakSent = true
        this.#nak(this.expectedPsn, 'PSN_SEQUENCE_ERROR')
      }
      return null
    }
    this.#nakSent = false
    switch (packet.opcode) {
      case Opcode.SEND:
      case Opcode.SEND_WITH_IMM:
        this.#send(packet, data)
        break
      case Opcode.RDMA_WRITE:
      case Opcode.RDMA_WRITE_WITH_IMM:
        this.#write(packet, data)
        break
      case Opcode.RDMA_READ:
        this.#read(packet, true)
        break
      case Opcode.ATOMIC_CMP_AND_SWP:
      case Opcode.ATOMIC_FETCH_AND_ADD:
        this.#atomic(packet, data)
    }
    return null
  }

  #onDuplicate(packet: Packet): DropReason | null {
    switch (packet.opcode) {
      case Opcode.RDMA_READ:
        // Read again only what a saved READ asked for: a forged duplicate gets nothing.
        if (this.#resources.matchRead(packet.psn, packet.rkey, packet.remoteAddr, packet.length, this.qp.mtu) === null) return 'unmatchedDuplicate'
        this.#read(packet, false)
        return null
      case Opcode.ATOMIC_CMP_AND_SWP:
      case Opcode.ATOMIC_FETCH_AND_ADD: {
        // Never execute an atomic twice: replay the original result, if it is saved.
        const original = this.#resources.atomicResult(packet.psn)
        if (original === undefined) return 'unmatchedDuplicate'
        const bytes = new Uint8Array(8)
        new DataView(bytes.buffer).setBigUint64(0, original, true)
        this.#reply('ATOMIC_ACKNOWLEDGE', packet.psn, 1, 8, bytes)
        return null
      }
      default:
        this.#reply('ACK', psnAdd(this.expectedPsn, -1), 1, 0, EMPTY_PAYLOAD)
        return null
    }
  }

  #send(packet: Packet, data: Uint8Array): void {
    if (!this.#hasRecv(packet)) return
    const r = this.#recvs.peek()!
    if (data.length > r.capacity) {
      this.#completeRecv(WcStatus.LOC_LEN_ERR, RecvOpcode.RECV, data.length, undefined)
      return this.#fatalNak(packet.psn, 'INVALID_REQUEST', `a ${data.length}-byte SEND does not fit the ${r.capacity}-byte receive buffer`)
    }
    if (!scatter(this.qp.device.memory, this.qp.pd, r.sges, data)) {
      this.#completeRecv(WcStatus.LOC_PROT_ERR, RecvOpcode.RECV, data.length, undefined)
      return this.#fatalNak(packet.psn, 'REMOTE_OPERATIONAL_ERROR', 'local protection error on a receive buffer (bad lkey, range or missing local-write)')
    }
    this.#completeRecv(WcStatus.SUCCESS, RecvOpcode.RECV, data.length, packet.imm)
    this.#ack(packet)
  }

  #write(packet: Packet, data: Uint8Array): void {
    const withImm = packet.opcode === Opcode.RDMA_WRITE_WITH_IMM
    if (withImm && !this.#hasRecv(packet)) return
    if (data.length !== packet.length) return this.#fatalNak(packet.psn, 'INVALID_REQUEST', 'RDMA WRITE length does not match its payload')
    if (packet.length > 0) {
      const target = this.#target(packet, AccessFlag.REMOTE_WRITE)
      if (typeof target === 'string') return this.#fatalNak(packet.psn, target, `RDMA WRITE rejected: ${target}`)
      target.set(data)
    }
    if (withImm) this.#completeRecv(WcStatus.SUCCESS, RecvOpcode.RECV_RDMA_WITH_IMM, packet.length, packet.imm)
    this.#ack(packet)
  }

  #read(packet: Packet, fresh: boolean): void {
    let bytes = EMPTY_PAYLOAD
    if (packet.length > 0) {
      const source = this.#target(packet, AccessFlag.REMOTE_READ)
      if (typeof source === 'string') return this.#fatalNak(packet.psn, source, `RDMA READ rejected: ${source}`)
      bytes = source.slice()
    }
    if (fresh) {
      this.expectedPsn = psnAdd(packet.psn, packet.packets)
      this.#resources.saveRead(packet.psn, packet.packets, packet.rkey, packet.remoteAddr, packet.length)
    }
    this.#reply('READ_RESPONSE', packet.psn, packet.packets, packet.length, bytes)
  }

  #atomic(packet: Packet, data: Uint8Array): void {
    if (packet.remoteAddr % 8 !== 0) return this.#fatalNak(packet.psn, 'INVALID_REQUEST', 'atomic target address is not 8-byte aligned')
    if (packet.length !== 8 || data.length !== 16) return this.#fatalNak(packet.psn, 'INVALID_REQUEST', 'malformed atomic request')
    const target = this.#target(packet, AccessFlag.REMOTE_ATOMIC)
    if (typeof target === 'string') return this.#fatalNak(packet.psn, target, `atomic rejected: ${target}`)
    const view = new DataView(target.buffer, target.byteOffset, 8)
    const operands = new DataView(data.buffer, data.byteOffset, 16)
    const original = target.slice(0, 8)
    const value = view.getBigUint64(0, true)
    const operand = operands.getBigUint64(0, true)
    if (packet.opcode === Opcode.ATOMIC_FETCH_AND_ADD) view.setBigUint64(0, (value + operand) & U64_MASK, true)
    else if (value === operand) view.setBigUint64(0, operands.getBigUint64(8, true), true)
    this.#resources.saveAtomic(packet.psn, new DataView(original.buffer, original.byteOffset, 8).getBigUint64(0, true))
    this.expectedPsn = psnAdd(packet.psn, 1)
    this.#reply('ATOMIC_ACKNOWLEDGE', packet.psn, 1, 8, original)
  }

  /** The target bytes of an RDMA request, or the NAK syndrome that refuses it. */
  #target(packet: Packet, access: number): Uint8Array | NakSyndrome {
    const qp = this.qp
    if ((qp.accessFlags & access) === 0) return 'INVALID_REQUEST'
    const mr = qp.device.memory.byRkey(packet.rkey)
    if (mr === undefined || mr.owner !== qp.pd) return 'REMOTE_ACCESS_ERROR'
    return mr.view(packet.remoteAddr, packet.length, access) ?? 'REMOTE_ACCESS_ERROR'
  }

  /** True when a receive WR is posted; otherwise answers with an RNR NAK. */
  #hasRecv(packet: Packet): boolean {
    if (!this.#recvs.empty) return true
    const qp = this.qp
    this.#nak(packet.psn, 'RNR', rnrDelayMs(qp.minRnrTimer, qp.device.fabric.maxRnrDelayMs))
    // The requester goes back to this PSN after its RNR wait: requests already behind it need no sequence NAK.
    this.#nakSent = true
    return false
  }

  #completeRecv(status: WcStatus, opcode: RecvOpcode, byteLen: number, imm: number | undefined): void {
    const r = this.#recvs.shift()!
    this.qp.completeRecv(r.wrId, status, opcode, byteLen, imm)
  }

  #ack(packet: Packet): void {
    this.expectedPsn = psnAdd(packet.psn, packet.packets)
    this.#reply('ACK', psnAdd(packet.psn, packet.packets - 1), 1, 0, EMPTY_PAYLOAD)
  }

  #nak(psn: number, syndrome: NakSyndrome, rnrDelay = 0): void {
    this.#reply('NAK', psn, 1, 0, EMPTY_PAYLOAD, syndrome, rnrDelay)
  }

  /** NAKs a request that cannot be executed and moves this QP to ERR, as verbs responders do. */
  #fatalNak(psn: number, syndrome: NakSyndrome, reason: string): void {
    this.#nak(psn, syndrome)
    this.qp.enterError(`responder: ${reason}`)
  }

  #reply(opcode: ResponseOpcode, psn: number, packets: number, length: number, payload: Uint8Array, syndrome: NakSyndrome | null = null, rnrDelay = 0): void {
    const qp = this.qp
    const p = new Packet(qp.device.key, qp.remoteKey, qp.qpn, qp.destQpn, opcode, psn, packets, length, payload)
    p.syndrome = syndrome
    p.rnrDelayMs = rnrDelay
    qp.transmit(p)
  }
}
