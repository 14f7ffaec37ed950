/**
 * The RC responder of one QP: executes requests in PSN order exactly once,
 * answers duplicates without executing them again (re-ACK; a READ re-sent only
 * when it matches a saved request, from the range the duplicate names; atomics
 * replayed from saved results; other duplicates dropped), NAKs a
 * PSN gap once, RNR-NAKs a SEND with no receive posted, checks rkey, bounds
 * and access before touching memory, and coalesces ACKs. With selective repeat (a peer that
 * announced it) it holds request packets past a gap in a bounded reorder window instead, tells
 * the requester which PSNs are missing with SACK NAKs, and executes the held packets in PSN
 * order once the gap fills.
 */
import { AccessFlag, FifoQueue, RecvOpcode, ResponderResources, WcStatus, type WorkCompletion } from '@rdma-session/provider-interface'
import { ackSyndrome, nakSyndrome, NakCode, rnrNakSyndrome } from '../wire/aeth.js'
import { RcOpcode, opcodeInfo } from '../wire/opcodes.js'
import { psnAdd, psnDiff } from '@rdma-session/rc-engine'
import type { RocePacket } from '../wire/packet.js'
import type { MemoryTable, PdHandle } from '../memory/memory-table.js'
import { scatter, type ResolvedSgl } from '../memory/scatter-gather.js'
import type { DeviceCounters, DropReason } from './device-counters.js'
import { newPacket } from './packet-template.js'
import { fillReadResponse, ResponseQueue, type ControlJob } from './response-queue.js'
import { ReorderBuffer } from './reorder-buffer.js'
import { encodeSack } from '../wire/sack.js'
import { lastPayloadOf, type ReceiveRunPlan } from '../socket/receive-run.js'
import { performance } from 'node:perf_hooks'

export interface RecvWqe {
  readonly wrId: number
  /** null: the SGE list failed its lkey/bounds/local-write check at post time. */
  readonly sgl: ResolvedSgl | null
  readonly length: number
}

/** What the responder needs from its QP. */
export interface ResponderHost {
  readonly qpn: number
  readonly counters: DeviceCounters
  readonly memory: MemoryTable
  readonly pd: PdHandle
  /** The QP's access flags (remote write/read/atomic enabled). */
  readonly accessFlags: number
  /** RNR NAK timer code sent to requesters. */
  readonly minRnrTimer: number
  readonly timers: { readonly ackDelayMs: number }
  /**
   * ACK as soon as a request asks for it (QoS class `latency`) instead of at the end of the
   * receive batch, where ACKs of all QPs are coalesced.
   */
  readonly immediateAcks: boolean
  emit(pkt: RocePacket, parts: readonly Uint8Array[], payloadLength: number): number
  completeRecv(wc: WorkCompletion): void
  /** The responder hit a fatal error (NAK sent): the QP must enter ERR. */
  responderFailed(reason: string): void
  /** Responses are queued: ask the scheduler for a turn. */
  wake(): void
  /** An ACK is due: flush it at the end of the current receive batch. */
  scheduleAck(): void
  /** Selective repeat: the reorder window in packets (0: go-back-N, out-of-order packets are dropped). */
  readonly reorderWindow: number
}

/** ACK at least every this-many request packets, even without AckReq. */
const ACK_EVERY = 16
/**
 * Selective repeat: a SACK NAK goes out for each new gap and after every 32nd of the reorder
 * window held since the last one (2 to ACK_EVERY packets; 8 for a 1 MiB window of 4 KiB packets):
 * often enough for the requester to count the held packets out of its congestion window while a
 * gap is open (every 16 measured slower at 5 % loss).
 */
const sackEvery = (window: number): number => Math.min(ACK_EVERY, Math.max(2, window >> 5))
const ACK = ackSyndrome()
const SEQ_NAK = nakSyndrome(NakCode.PSN_SEQUENCE_ERROR)
const CUR_NONE = 0
const CUR_SEND = 1
const CUR_WRITE = 2
const EMPTY = new Uint8Array(0)
const MAX_VA = BigInt(Number.MAX_SAFE_INTEGER)

export class Responder {
  readonly #host: ResponderHost
  readonly #pmtu: number
  #epsn: number
  #msn = 0
  readonly #recvs = new FifoQueue<RecvWqe>()
  #cur = CUR_NONE
  #curRecv: RecvWqe | null = null
  #curTarget: Uint8Array = EMPTY
  #curOffset = 0
  /** A PSN sequence NAK (or RNR NAK) was sent: stay silent until the expected PSN arrives. */
  #nakSent = false
  #ackPending = false
  #unacked = 0
  /**
   * Runs while executed packets wait for an ACK nobody asked for. Sending the ACK does not cancel
   * it (no timer churn per ACK): when it comes due it checks whether packets still wait, and for
   * how long.
   */
  #ackTimer: NodeJS.Timeout | null = null
  /** When the oldest packet not yet acknowledged was executed (performance.now()). */
  #unackedSince = 0
  readonly #onAckTimer = (): void => {
    this.#ackTimer = null
    if (this.#unacked === 0 || this.#stopped || this.#ackPending) return
    const left = this.#unackedSince + this.#host.timers.ackDelayMs - performance.now()
    if (left > 0.1) this.#armAckTimer(left)
    else this.#requestAck()
  }
  readonly #queue = new ResponseQueue()
  /** Saved READ and atomic requests (max_dest_rd_atomic of them): what a duplicate may re-execute. */
  readonly #resources: ResponderResources
  /** RDMA READ and atomic requests this responder takes at once (the QP's max_dest_rd_atomic). */
  readonly #maxDestRdAtomic: number
  readonly #pkt = newPacket()
  readonly #parts: Uint8Array[] = []
  #stopped = false
  /** Selective repeat: packets past a gap, held until it fills (null: go-back-N). */
  readonly #reorder: ReorderBuffer | null
  /** Packets held since the last SACK NAK, and how many call for the next one. */
  #sinceSack = 0
  readonly #sackEvery: number
  /** A held packet's duplicate got a SACK NAK since the last regular one. */
  #dupSacked = false

  constructor(host: ResponderHost, attrs: { rqPsn: number; pmtu: number; maxDestRdAtomic: number }) {
    this.#host = host
    this.#reorder = host.reorderWindow > 0 ? new ReorderBuffer(host.reorderWindow) : null
    this.#sackEvery = sackEvery(this.#reorder?.capacity ?? 0)
    this.#epsn = attrs.rqPsn
    this.#pmtu = attrs.pmtu
    this.#maxDestRdAtomic = attrs.maxDestRdAtomic
    this.#resources = new ResponderResources(attrs.maxDestRdAtomic)
  }

  get expectedPsn(): number {
    return this.#epsn
  }

  /** True when responses are queued for the scheduler. */
  get hasWork(): boolean {
    return !this.#stopped && (!this.#queue.empty || this.#ackPending)
  }

  /** Only a coalesced ACK is due (no READ response or NAK queued). */
  get onlyAckDue(): boolean {
    return !this.#stopped && this.#ackPending && this.#queue.empty
  }

  postRecv(wqe: RecvWqe): void {
    this.#recvs.push(wqe)
  }

  get postedRecvs(): number {
    return this.#recvs.length
  }

  /** Packets held out of order now (selective repeat; 0 with go-back-N). */
  get heldOutOfOrder(): number {
    return this.#reorder?.held ?? 0
  }

  stop(): void {
    this.#stopped = true
    this.#reorder?.clear()
    this.#queue.clear()
    this.#ackPending = false
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer)
    this.#ackTimer = null
  }

  /** Removes and returns the receive WQEs not completed, in post order. */
  takeOutstanding(): RecvWqe[] {
    const rest: RecvWqe[] = []
    if (this.#curRecv !== null) rest.push(this.#curRecv)
    rest.push(...this.#recvs.drain())
    this.#curRecv = null
    return rest
  }

  // ---- receive runs (socket/receive-run.ts)

  /**
   * Where a run of packets continuing the current message may go, when `op` (a run opcode:
   * WRITE/SEND middle or last without immediate) continues it: a WRITE or SEND in progress, no
   * packets held out of order, ACKs coalesced (not a latency-class QP). null: the per-packet path.
   */
  runPlan(op: number): ReceiveRunPlan | null {
    if (this.#stopped || this.#host.immediateAcks || (this.#reorder !== null && this.#reorder.held > 0)) return null
    if (this.#cur === CUR_WRITE) {
      if (op !== RcOpcode.RDMA_WRITE_MIDDLE && op !== RcOpcode.RDMA_WRITE_LAST) return null
      const target = this.#curTarget
      this.#runTarget[0] = target
      return { psn: this.#epsn, pmtu: this.#pmtu, opMiddle: RcOpcode.RDMA_WRITE_MIDDLE, opLast: RcOpcode.RDMA_WRITE_LAST, targets: this.#runTarget, offset: this.#curOffset, exact: true, lastPayload: lastPayloadOf(target.length, this.#pmtu) }
    }
    if (this.#cur === CUR_SEND) {
      if (op !== RcOpcode.SEND_MIDDLE && op !== RcOpcode.SEND_LAST) return null
      const recv = this.#curRecv
      if (recv === null || recv.sgl === null || recv.sgl.length !== recv.length) return null
      return { psn: this.#epsn, pmtu: this.#pmtu, opMiddle: RcOpcode.SEND_MIDDLE, opLast: RcOpcode.SEND_LAST, targets: recv.sgl.views, offset: this.#curOffset, exact: false, lastPayload: this.#pmtu }
    }
    return null
  }

  readonly #runTarget: Uint8Array[] = [EMPTY]

  /**
   * The helper executed `packets` packets from the expected PSN of the message runPlan described:
   * `bytes` placed, `ackRequests` of them with AckReq, the last one among them when `ended`. The
   * same bookkeeping as #send/#write + #executed per packet, once.
   */
  applyRun(packets: number, bytes: number, ackRequests: number, ended: boolean): void {
    this.#nakSent = false
    this.#curOffset += bytes
    this.#epsn = psnAdd(this.#epsn, packets)
    if (ended) {
      this.#msn = (this.#msn + 1) & 0xffffff
      if (this.#cur === CUR_WRITE) {
        this.#cur = CUR_NONE
        this.#curTarget = EMPTY
      } else this.#finishRecv(WcStatus.SUCCESS, RecvOpcode.RECV, this.#curOffset, undefined)
    }
    if (this.#unacked === 0) this.#unackedSince = performance.now()
    this.#unacked += packets
    if (ackRequests > 0 || this.#unacked >= ACK_EVERY) this.#requestAck()
    else if (this.#ackTimer === null && !this.#ackPending) this.#armAckTimer(this.#host.timers.ackDelayMs)
  }

  // ---- requests

  /** Handles one request packet; returns why it was dropped, or null. */
  receive(pkt: RocePacket): DropReason | null {
    if (this.#stopped) return 'wrongState'
    const psn = pkt.bth.psn
    const d = psnDiff(psn, this.#epsn)
    if (d > 0) {
      // After an RNR NAK the requester goes back to the refused PSN: nothing past it is kept.
      if (this.#reorder !== null && !this.#nakSent) return this.#outOfOrder(pkt, d)
      if (!this.#nakSent) {
        this.#nakSent = true
        this.#control(RcOpcode.ACKNOWLEDGE, this.#epsn, SEQ_NAK, 0n)
      }
      return 'badPsn'
    }
    if (d < 0) return this.#duplicate(pkt, psn)
    this.#nakSent = false
    const dropped = this.#execute(pkt, psn)
    if (this.#reorder !== null && this.#reorder.held > 0) this.#drain()
    return dropped
  }

  /** Executes the request at the expected PSN. */
  #execute(pkt: RocePacket, psn: number): DropReason | null {
    const op = pkt.bth.opcode
    if (op <= RcOpcode.SEND_ONLY_WITH_IMMEDIATE) return this.#send(pkt, op)
    if (op <= RcOpcode.RDMA_WRITE_ONLY_WITH_IMMEDIATE) return this.#write(pkt, op)
    if (op === RcOpcode.RDMA_READ_REQUEST) return this.#read(pkt, psn)
    if (op === RcOpcode.COMPARE_SWAP || op === RcOpcode.FETCH_ADD) return this.#atomic(pkt, psn, op)
    return this.#fatal(psn, NakCode.INVALID_REQUEST, `unsupported opcode 0x${op.toString(16)}`)
  }

  // ---- selective repeat

  /** A request `d` PSNs past the expected one: held within the window, the gap reported. */
  #outOfOrder(pkt: RocePacket, d: number): DropReason | null {
    const r = this.#reorder!
    const c = this.#host.counters
    const top = r.highest(this.#epsn)
    const res = r.hold(pkt, d)
    if (res === 'overflow') {
      c.reorderOverflows++
      return 'badPsn'
    }
    if (res === 'duplicate') {
      // The requester sent again what is held here (a probe, or it missed a SACK): tell it, once
      // per SACK interval (a go-back-N resend of a whole window asks only once).
      if (!this.#dupSacked) {
        this.#dupSacked = true
        this.#sendSack()
      }
      return 'badPsn'
    }
    c.outOfOrderBuffered++
    // A new gap (PSNs skipped past the highest held packet) is reported at once.
    if (d > top + 1 || ++this.#sinceSack >= this.#sackEvery) {
      this.#dupSacked = false
      this.#sendSack()
    }
    return null
  }

  /** The gap filled: executes the held packets that now follow in PSN order. */
  #drain(): void {
    const r = this.#reorder!
    let executed = false
    for (;;) {
      if (this.#stopped || this.#nakSent) {
        r.clear()
        break
      }
      const at = this.#epsn
      const next = r.take(at)
      if (next === null) break
      this.#execute(next, at)
      if (this.#epsn === at) {
        // Not executed (RNR NAK, or a fatal NAK): the requester goes back to it.
        r.clear()
        break
      }
      executed = true
    }
    if (this.#stopped || this.#nakSent) return
    this.#dupSacked = false
    if (r.held > 0) this.#sendSack()
    else if (executed) this.#requestAck()
  }

  /** A SACK NAK at the expected PSN: what arrived past it (an ordinary sequence NAK to any other reader). */
  #sendSack(): void {
    this.#sinceSack = 0
    const { bitmap, words } = this.#reorder!.sackBitmap(this.#epsn)
    this.#host.counters.sackNaksSent++
    this.#control(RcOpcode.ACKNOWLEDGE, this.#epsn, SEQ_NAK, 0n, encodeSack(bitmap, words))
  }

  #send(pkt: RocePacket, op: number): DropReason | null {
    const psn = pkt.bth.psn
    const pos = opcodeInfo(op)!.position
    const starts = pos === 'first' || pos === 'only'
    if (starts !== (this.#cur === CUR_NONE) || (!starts && this.#cur !== CUR_SEND)) {
      return this.#fatal(psn, NakCode.INVALID_REQUEST, `${opcodeInfo(op)!.name} out of sequence`)
    }
    const len = pkt.payload.length
    if (pos === 'first' || pos === 'middle' ? len !== this.#pmtu : len > this.#pmtu) {
      return this.#fatal(psn, NakCode.INVALID_REQUEST, `SEND packet of ${len} bytes with path MTU ${this.#pmtu}`)
    }
    if (starts) {
      const recv = this.#recvs.shift()
      if (recv === undefined) return this.#rnr(psn)
      this.#cur = CUR_SEND
      this.#curRecv = recv
      this.#curOffset = 0
    }
    const recv = this.#curRecv!
    if (recv.sgl === null) {
      this.#finishRecv(WcStatus.LOC_PROT_ERR, RecvOpcode.RECV, 0, undefined)
      return this.#fatal(psn, NakCode.REMOTE_OPERATIONAL_ERROR, 'local protection error on the receive buffer (bad lkey, range or missing local-write)')
    }
    if (this.#curOffset + len > recv.length) {
      this.#finishRecv(WcStatus.LOC_LEN_ERR, RecvOpcode.RECV, this.#curOffset + len, undefined)
      return this.#fatal(psn, NakCode.INVALID_REQUEST, `a SEND of more than ${recv.length} bytes does not fit the receive buffer`)
    }
    if (len > 0) scatter(recv.sgl, this.#curOffset, pkt.payload)
    this.#curOffset += len
    if (pos === 'last' || pos === 'only') {
      this.#msn = (this.#msn + 1) & 0xffffff
      this.#finishRecv(WcStatus.SUCCESS, RecvOpcode.RECV, this.#curOffset, pkt.immDt)
    }
    this.#executed(pkt)
    return null
  }

  #write(pkt: RocePacket, op: number): DropReason | null {
    const psn = pkt.bth.psn
    const pos = opcodeInfo(op)!.position
    const starts = pos === 'first' || pos === 'only'
    if (starts !== (this.#cur === CUR_NONE) || (!starts && this.#cur !== CUR_WRITE)) {
      return this.#fatal(psn, NakCode.INVALID_REQUEST, `${opcodeInfo(op)!.name} out of sequence`)
    }
    const len = pkt.payload.length
    if (pos === 'first' || pos === 'middle' ? len !== this.#pmtu : len > this.#pmtu) {
      return this.#fatal(psn, NakCode.INVALID_REQUEST, `RDMA WRITE packet of ${len} bytes with path MTU ${this.#pmtu}`)
    }
    if (starts) {
      if ((this.#host.accessFlags & AccessFlag.REMOTE_WRITE) === 0) return this.#fatal(psn, NakCode.INVALID_REQUEST, 'the QP does not allow remote writes')
      const reth = pkt.reth!
      const target = this.#remote(reth.rkey, reth.va, reth.dmaLength, AccessFlag.REMOTE_WRITE)
      if (target === null) return this.#accessError(psn, 'RDMA WRITE')
      if (pos === 'only' ? len !== target.length : target.length <= this.#pmtu) {
        return this.#fatal(psn, NakCode.INVALID_REQUEST, `RDMA WRITE length ${reth.dmaLength} does not match its packets`)
      }
      this.#curTarget = target
      this.#curOffset = 0
    }
    const ends = pos === 'last' || pos === 'only'
    const withImm = op === RcOpcode.RDMA_WRITE_LAST_WITH_IMMEDIATE || op === RcOpcode.RDMA_WRITE_ONLY_WITH_IMMEDIATE
    const target = this.#curTarget
    if (this.#curOffset + len > target.length || (ends && this.#curOffset + len !== target.length)) {
      return this.#fatal(psn, NakCode.INVALID_REQUEST, `RDMA WRITE payload does not match its length ${target.length}`)
    }
    if (withImm && this.#recvs.empty) return this.#rnr(psn)
    this.#cur = ends ? CUR_NONE : CUR_WRITE
    if (len > 0) target.set(pkt.payload, this.#curOffset)
    this.#curOffset += len
    if (ends) {
      this.#msn = (this.#msn + 1) & 0xffffff
      this.#curTarget = EMPTY
      if (withImm) {
        this.#curRecv = this.#recvs.shift()!
        this.#finishRecv(WcStatus.SUCCESS, RecvOpcode.RECV_RDMA_WITH_IMM, target.length, pkt.immDt)
      }
    }
    this.#executed(pkt)
    return null
  }

  #read(pkt: RocePacket, psn: number): DropReason | null {
    if (this.#cur !== CUR_NONE) return this.#fatal(psn, NakCode.INVALID_REQUEST, 'RDMA READ inside a multi-packet message')
    if ((this.#host.accessFlags & AccessFlag.REMOTE_READ) === 0) return this.#fatal(psn, NakCode.INVALID_REQUEST, 'the QP does not allow remote reads')
    if (this.#queue.freshReads >= this.#maxDestRdAtomic) {
      return this.#fatal(psn, NakCode.INVALID_REQUEST, `RDMA READ beyond max_dest_rd_atomic (${this.#maxDestRdAtomic} outstanding)`)
    }
    const reth = pkt.reth!
    const data = this.#remote(reth.rkey, reth.va, reth.dmaLength, AccessFlag.REMOTE_READ)
    if (data === null) return this.#accessError(psn, 'RDMA READ')
    const packets = Math.max(1, Math.ceil(data.length / this.#pmtu))
    this.#msn = (this.#msn + 1) & 0xffffff
    this.#epsn = psnAdd(psn, packets)
    this.#unacked = 0
    this.#resources.saveRead(psn, packets, reth.rkey, Number(reth.va), data.length)
    this.#queue.push({ kind: 'read', psn, data, packets, next: 0, fresh: true, replay: null })
    this.#host.wake()
    return null
  }

  #atomic(pkt: RocePacket, psn: number, op: number): DropReason | null {
    if (this.#cur !== CUR_NONE) return this.#fatal(psn, NakCode.INVALID_REQUEST, 'atomic inside a multi-packet message')
    if ((this.#host.accessFlags & AccessFlag.REMOTE_ATOMIC) === 0) return this.#fatal(psn, NakCode.INVALID_REQUEST, 'the QP does not allow remote atomics')
    // Answered at once, so never outstanding here; with max_dest_rd_atomic 0 none is taken (as rxe).
    if (this.#maxDestRdAtomic === 0) return this.#fatal(psn, NakCode.INVALID_REQUEST, 'atomic with max_dest_rd_atomic 0')
    const a = pkt.atomicEth!
    if ((a.va & 7n) !== 0n) return this.#fatal(psn, NakCode.INVALID_REQUEST, 'atomic address is not 8-byte aligned')
    const target = this.#remote(a.rkey, a.va, 8, AccessFlag.REMOTE_ATOMIC)
    if (target === null) return this.#accessError(psn, 'atomic')
    const mem = Buffer.from(target.buffer, target.byteOffset, 8)
    const orig = mem.readBigUInt64LE(0)
    if (op === RcOpcode.COMPARE_SWAP) {
      if (orig === a.compare) mem.writeBigUInt64LE(a.swapAdd, 0)
    } else mem.writeBigUInt64LE(BigInt.asUintN(64, orig + a.swapAdd), 0)
    this.#resources.saveAtomic(psn, orig)
    this.#msn = (this.#msn + 1) & 0xffffff
    this.#epsn = psnAdd(psn, 1)
    this.#unacked = 0
    this.#control(RcOpcode.ATOMIC_ACKNOWLEDGE, psn, ACK, orig)
    return null
  }

  /** The target bytes of a remote request, or null for any rkey/bounds/access violation. Zero-length requests name no memory. */
  #remote(rkey: number, va: bigint, length: number, access: number): Uint8Array | null {
    if (length === 0) return EMPTY
    if (va > BigInt(Number.MAX_SAFE_INTEGER)) return null
    return this.#host.memory.remote(this.#host.pd, rkey, Number(va), length, access)
  }

  /** Bookkeeping after a SEND/WRITE packet executed: next PSN, ACK coalescing. */
  #executed(pkt: RocePacket): void {
    this.#epsn = psnAdd(pkt.bth.psn, 1)
    if (this.#unacked++ === 0) this.#unackedSince = performance.now()
    if (pkt.bth.ackReq || this.#unacked >= ACK_EVERY) this.#requestAck()
    else if (this.#ackTimer === null && !this.#ackPending) this.#armAckTimer(this.#host.timers.ackDelayMs)
  }

  #armAckTimer(ms: number): void {
    const t = setTimeout(this.#onAckTimer, ms)
    t.unref()
    this.#ackTimer = t
  }

  #finishRecv(status: WcStatus, opcode: RecvOpcode, byteLen: number, imm: number | undefined): void {
    const recv = this.#curRecv!
    this.#curRecv = null
    this.#cur = CUR_NONE
    const wc: WorkCompletion = imm === undefined || status !== WcStatus.SUCCESS
      ? { wrId: recv.wrId, status, opcode, byteLen, qpn: this.#host.qpn }
      : { wrId: recv.wrId, status, opcode, byteLen, qpn: this.#host.qpn, imm }
    this.#host.completeRecv(wc)
  }

  #duplicate(pkt: RocePacket, psn: number): DropReason | null {
    const op = pkt.bth.opcode
    if (op === RcOpcode.RDMA_READ_REQUEST) {
      // Re-execute only the part of a saved READ this (possibly partial) retransmission names.
      const reth = pkt.reth!
      const replay = reth.va > MAX_VA ? null : this.#resources.matchRead(psn, reth.rkey, Number(reth.va), reth.dmaLength, this.#pmtu)
      if (replay === null) return 'unmatchedDuplicate'
      const data = this.#remote(reth.rkey, reth.va, reth.dmaLength, AccessFlag.REMOTE_READ)
      if (data === null) return 'accessViolation'
      this.#host.counters.duplicatesAnswered++
      replay.replaying = true
      this.#queue.push({ kind: 'read', psn, data, packets: Math.max(1, Math.ceil(data.length / this.#pmtu)), next: 0, fresh: false, replay })
      this.#host.wake()
      return null
    }
    if (op === RcOpcode.COMPARE_SWAP || op === RcOpcode.FETCH_ADD) {
      const orig = this.#resources.atomicResult(psn)
      if (orig === undefined) return 'unmatchedDuplicate'
      this.#host.counters.duplicatesAnswered++
      this.#control(RcOpcode.ATOMIC_ACKNOWLEDGE, psn, ACK, orig)
      return null
    }
    this.#host.counters.duplicatesAnswered++
    this.#requestAck()
    return null
  }

  // ---- responses

  #rnr(psn: number): DropReason | null {
    this.#nakSent = true
    this.#control(RcOpcode.ACKNOWLEDGE, psn, rnrNakSyndrome(this.#host.minRnrTimer & 0x1f), 0n)
    return null
  }

  #accessError(psn: number, what: string): DropReason {
    this.#fatal(psn, NakCode.REMOTE_ACCESS_ERROR, `${what} violates rkey, bounds or access rights`)
    return 'accessViolation'
  }

  /** NAKs a request that cannot be executed and moves the QP to ERR (after sending what is queued). */
  #fatal(psn: number, code: number, reason: string): DropReason | null {
    while (!this.#queue.empty) this.sendNext()
    this.#emitControl(RcOpcode.ACKNOWLEDGE, psn, nakSyndrome(code), this.#msn, 0n)
    this.#host.counters.nakSent(nakSyndrome(code))
    this.stop()
    this.#host.responderFailed(`responder: ${reason}`)
    return null
  }

  #requestAck(): void {
    if (this.#ackPending) return
    if (this.#host.immediateAcks && this.#queue.empty && !this.#stopped) {
      // Latency class: the ACK goes now, not after the rest of this receive batch.
      this.#sendAck()
      return
    }
    this.#ackPending = true
    this.#host.scheduleAck()
  }

  /**
   * Sends the ACK still owed for executed requests (coalesced and not yet sent). For when the
   * application moves the QP to ERR or destroys it right after its receive completions: kernel
   * rxe and NICs have ACKed by then, and a requester left without the ACK retries into
   * RETRY_EXC_ERR (rc_pingpong's last SEND, for one).
   */
  acknowledgeExecuted(): void {
    if (this.#stopped || !this.#queue.empty || (!this.#ackPending && this.#unacked === 0)) return
    this.#sendAck()
  }

  /** Sends a coalesced ACK now unless responses are queued (the last of them carries it instead). */
  flushAck(): void {
    if (!this.#ackPending || this.#stopped || !this.#queue.empty) return
    this.#sendAck()
  }

  #sendAck(): number {
    this.#ackPending = false
    this.#unacked = 0
    this.#host.counters.acksSent++
    return this.#emitControl(RcOpcode.ACKNOWLEDGE, psnAdd(this.#epsn, -1), ACK, this.#msn, 0n)
  }

  /** Sends a control packet now, or queues it behind responses already queued. */
  #control(opcode: number, psn: number, syndrome: number, orig: bigint, ext: Uint8Array | null = null): void {
    this.#host.counters.nakSent(syndrome)
    if (this.#queue.empty) {
      this.#emitControl(opcode, psn, syndrome, this.#msn, orig, ext)
      return
    }
    const job: ControlJob = { kind: 'control', opcode, psn, syndrome, msn: this.#msn, orig, ext }
    this.#queue.push(job)
    this.#host.wake()
  }

  #emitControl(opcode: number, psn: number, syndrome: number, msn: number, orig: bigint, ext: Uint8Array | null = null): number {
    const pkt = this.#pkt
    pkt.bth.opcode = opcode
    pkt.bth.psn = psn
    pkt.bth.ackReq = false
    pkt.reth = undefined
    pkt.aeth = { syndrome, msn }
    pkt.atomicAckEth = opcode === RcOpcode.ATOMIC_ACKNOWLEDGE ? { origData: orig } : undefined
    this.#parts.length = 0
    if (ext === null) return this.#host.emit(pkt, this.#parts, 0)
    this.#parts.push(ext)
    return this.#host.emit(pkt, this.#parts, ext.length)
  }

  /** Sends the next queued response packet; returns its bytes, or 0 when nothing is queued. */
  sendNext(): number {
    if (this.#stopped) return 0
    const job = this.#queue.peek()
    if (job === undefined) {
      return this.#ackPending ? this.#sendAck() : 0
    }
    if (job.kind === 'control') {
      this.#queue.shift()
      return this.#emitControl(job.opcode, job.psn, job.syndrome, job.msn, job.orig, job.ext)
    }
    const k = job.next++
    const last = k === job.packets - 1
    const len = fillReadResponse(job, k, this.#pmtu, ACK, this.#msn, this.#pkt, this.#parts)
    if (last) {
      this.#queue.shift()
      if (job.replay !== null) job.replay.replaying = false
      // The READ response ACKs everything before it: an ACK waiting only for it is no longer needed.
      if (this.#ackPending && this.#queue.empty && psnAdd(job.psn, job.packets) === this.#epsn) {
        this.#ackPending = false
        this.#unacked = 0
      }
    }
    return this.#host.emit(this.#pkt, this.#parts, len)
  }
}
