/**
 * A softroce RC queue pair: the SPI object core drives. It applies checked
 * state transitions, owns the requester (send queue) and responder (receive
 * queue), feeds the device scheduler with packets, and flushes every
 * outstanding WR with WR_FLUSH_ERR, in post order, when it enters ERR.
 */
import type { WireTarget } from '../socket/native-send.js'
import {
  ClosedError, InvalidArgumentError, QpAttributeError, QpState, QpStateError, QueueFullError, RecvOpcode, WcStatus,
  checkQpTransition,
  type ProviderMetrics, type ProviderQp, type ProviderQpInit, type QpAttrs, type QpEvent, type QpModifyAttrs, type QpQos, type RecvWorkRequest, type RemoteEndpoint,
  type SendWorkRequest, type WorkCompletion,
} from '@rdma-session/provider-interface'
import type { SoftRoceCq } from '../cq.js'
import { PacketProtection } from '../crypto/packet-protection.js'
import type { MemoryTable, PdHandle } from '../memory/memory-table.js'
import { resolveSgl } from '../memory/scatter-gather.js'
import type { PacketSource, SendFlow } from '../scheduler/send-scheduler.js'
import type { IpContext } from '../wire/icrc.js'
import { HeaderSize, opcodeInfo } from '../wire/opcodes.js'
import type { RocePacket } from '../wire/packet.js'
import { QP_DEFAULTS, TransportCounters } from '@rdma-session/rc-engine'
import type { DeviceCounters, DropReason } from './device-counters.js'
import type { RcTimers } from './timer-options.js'
import { Requester, type RequesterHost } from './requester.js'
import { Responder, type RecvWqe, type ResponderHost } from './responder.js'
import type { ReceiveRunPlan } from '../socket/receive-run.js'
import { createSendWqe, type SendWqe } from './send-wqe.js'
import type { DelayWindowConfig } from './delay-window.js'
import { priorityOfClass, PRIORITY_LATENCY } from '../scheduler/send-scheduler.js'

/** The transport extension (DeviceInfo.extensions) of softroce's selective repeat. */
export const SELECTIVE_REPEAT = 'selective-repeat'

/** What a QP needs from its device. */
export interface QpDevice {
  readonly counters: DeviceCounters
  readonly timers: RcTimers
  readonly memory: MemoryTable
  readonly maxMtu: number
  /** Bytes a QP may have unacknowledged. */
  readonly windowBytes: number
  readonly replayWindow: number
  readonly lazyAcks: boolean
  /** Selective repeat with peers that announce it (DeviceInfo.extensions). */
  readonly selectiveRepeat: boolean
  /** The delay-based congestion window of every QP (null: off). */
  readonly delayWindow: DelayWindowConfig | null
  /** When a latency-class QP of the device last accepted a packet (performance.now(); -Infinity: never). */
  readonly latencyTrafficAt: number
  /** Sends one packet of `qp`; returns the bytes put on the wire. */
  transmit(qp: SoftRoceQp, pkt: RocePacket, parts: readonly Uint8Array[], payloadLength: number): number
  /** Sends `count` middle packets of one message framed by the helper (device.transmitRun); returns the packets sent (0: send them one by one). */
  transmitRun?(qp: SoftRoceQp, pkt: RocePacket, payload: Uint8Array, seg: number, count: number, ackReq: Uint8Array): number
  /** The IP/UDP context (for the ICRC) of packets to `remote`. */
  ipContextTo(remote: RemoteEndpoint): IpContext
  createFlow(source: PacketSource, qos: QpQos): SendFlow
  wakeFlow(flow: SendFlow): void
  removeFlow(flow: SendFlow): void
  /** True while a received packet is being handled (a socket callback, never a post call). */
  readonly receiving: boolean
  /** Flush `qp`'s coalesced ACK at the end of the current receive batch. */
  scheduleAck(qp: SoftRoceQp): void
  forgetQp(qp: SoftRoceQp): void
}

function emitFatal(qp: SoftRoceQp, reason: string): void {
  qp.emitEvent({ type: 'fatal', qpn: qp.qpn, reason })
}

function runFlush(qp: SoftRoceQp): void {
  qp.flushNow()
}

export class SoftRoceQp implements ProviderQp, PacketSource, RequesterHost, ResponderHost {
  readonly qpn: number
  readonly counters: DeviceCounters
  readonly qpCounters = new TransportCounters()
  readonly timers: RcTimers
  readonly memory: MemoryTable
  readonly pd: PdHandle
  readonly qos: QpQos
  readonly sendCq: SoftRoceCq
  readonly recvCq: SoftRoceCq
  readonly #init: ProviderQpInit
  readonly #device: QpDevice
  readonly #flow: SendFlow
  #state: QpState = QpState.RESET
  #attrs: Omit<QpAttrs, 'qpn' | 'state' | 'encrypted'> = {}
  #requester: Requester | null = null
  #responder: Responder | null = null
  /** Receives posted before RTR. */
  #earlyRecvs: RecvWqe[] = []
  /** WRs to complete with WR_FLUSH_ERR at the next flush. */
  #flushSends: SendWqe[] = []
  #flushRecvs: RecvWqe[] = []
  #flushScheduled = false
  #onEvent: ((event: QpEvent) => void) | null = null
  #destroyed = false
  /** The IP/UDP context of packets to the remote (ICRC), set at RTR. */
  ip: IpContext | null = null
  remote: RemoteEndpoint | null = null
  /** The device's native send target for this QP (destination sockaddr, TOS, hop limit); dropped at every modify. */
  wireTarget: WireTarget | null = null
  destQpn = 0
  pmtu: number = QP_DEFAULTS.pathMtu
  protection: PacketProtection | null = null
  accessFlags = 0
  minRnrTimer: number = QP_DEFAULTS.minRnrTimer
  windowPackets = 64
  /** Selective repeat on this connection: this device and the remote both announced it (set at RTR). */
  selectiveRepeat = false
  /** The responder's reorder window in packets (selective repeat; 0: go-back-N). */
  reorderWindow = 0
  readonly lazyAcks: boolean
  readonly delayWindow: DelayWindowConfig | null
  /** The scheduler's priority level of this QP (PRIORITY_LATENCY for QoS class `latency`). */
  readonly priority: number
  /** QoS class `latency`: the responder ACKs at once, not at the end of the receive batch. */
  readonly immediateAcks: boolean

  constructor(qpn: number, pd: PdHandle, init: ProviderQpInit, device: QpDevice) {
    this.qpn = qpn
    this.pd = pd
    this.#init = init
    this.#device = device
    this.counters = device.counters
    this.timers = device.timers
    this.memory = device.memory
    this.qos = init.qos
    this.lazyAcks = device.lazyAcks
    const dw = device.delayWindow
    this.delayWindow = dw !== null && dw.classes.has(init.qos.className) ? dw : null
    this.priority = priorityOfClass(init.qos.className)
    this.immediateAcks = this.priority === PRIORITY_LATENCY
    this.sendCq = init.sendCq as SoftRoceCq
    this.recvCq = init.recvCq as SoftRoceCq
    this.sendCq.attach(this)
    this.recvCq.attach(this)
    this.#flow = device.createFlow(this, init.qos)
  }

  get state(): QpState {
    return this.#state
  }

  get destroyed(): boolean {
    return this.#destroyed
  }

  /** Traffic class byte of this QP's packets (from its QoS, or the session's encapsulation). */
  get trafficClass(): number {
    const e = this.#attrs.encapsulation
    return e !== undefined && this.qos.trafficClass === 0 ? ((e.dscp << 2) | e.ecn) : this.qos.trafficClass
  }

  /** IP TTL / hop limit of this QP's packets from its encapsulation; 0: the socket's default. */
  get hopLimit(): number {
    return this.#attrs.encapsulation?.hopLimit ?? 0
  }

  // ---- state

  modify(attrs: QpModifyAttrs): void {
    this.#checkAlive()
    this.wireTarget = null
    const from = this.#state
    checkQpTransition(from, attrs)
    const to = attrs.state
    if (to === QpState.ERR) return this.enterError(null)
    if (to === QpState.RESET) return this.#reset()
    if ((from === QpState.RTS || from === QpState.SQD) && to === QpState.RTS && attrs.encryption !== undefined) this.#rekey(attrs)
    const { encryption, ...rest } = attrs
    void encryption
    this.#attrs = { ...this.#attrs, ...rest }
    delete (this.#attrs as { state?: QpState }).state
    if (attrs.accessFlags !== undefined) this.accessFlags = attrs.accessFlags
    if (attrs.minRnrTimer !== undefined) this.minRnrTimer = attrs.minRnrTimer
    if (from === QpState.INIT && to === QpState.RTR) this.#toRtr(attrs)
    if (from === QpState.RTR && to === QpState.RTS) this.#toRts(attrs)
    this.#state = to
    if (to === QpState.RTS) this.wake()
  }

  #toRtr(attrs: QpModifyAttrs): void {
    this.remote = attrs.remote!
    this.ip = this.#device.ipContextTo(attrs.remote!)
    this.destQpn = attrs.destQpn!
    this.pmtu = Math.min(attrs.pathMtu!, this.#device.maxMtu)
    this.windowPackets = Math.max(8, Math.floor(this.#device.windowBytes / this.pmtu))
    this.selectiveRepeat = this.#device.selectiveRepeat && (attrs.remote!.extensions?.includes(SELECTIVE_REPEAT) ?? false)
    this.reorderWindow = this.selectiveRepeat ? this.windowPackets : 0
    this.protection = attrs.encryption ? new PacketProtection(attrs.encryption, this.#device.replayWindow) : null
    const responder = new Responder(this, { rqPsn: attrs.rqPsn!, pmtu: this.pmtu, maxDestRdAtomic: attrs.maxDestRdAtomic ?? QP_DEFAULTS.maxRdAtomic })
    for (const r of this.#earlyRecvs) responder.postRecv(r)
    this.#earlyRecvs = []
    this.#responder = responder
  }

  #toRts(attrs: QpModifyAttrs): void {
    this.#requester = new Requester(this, {
      sqPsn: attrs.sqPsn!,
      pmtu: this.pmtu,
      timeout: attrs.timeout ?? QP_DEFAULTS.timeout,
      retryCnt: attrs.retryCnt ?? QP_DEFAULTS.retryCnt,
      rnrRetry: attrs.rnrRetry ?? QP_DEFAULTS.rnrRetry,
      maxRdAtomic: attrs.maxRdAtomic ?? QP_DEFAULTS.maxRdAtomic,
    })
  }

  #rekey(attrs: QpModifyAttrs): void {
    const enc = attrs.encryption
    if (enc === null || enc === undefined) {
      if (this.protection !== null) throw new QpAttributeError('encryption', 'cannot turn encryption off on a connected QP')
      return
    }
    if (this.protection === null) throw new QpAttributeError('encryption', 'cannot turn encryption on for a QP connected in plaintext')
    if ((enc.epoch >>> 0) < this.protection.epoch) throw new QpAttributeError('encryption', `epoch ${enc.epoch} is older than the current ${this.protection.epoch}`)
    this.protection.rekey(enc)
  }

  #reset(): void {
    this.#requester?.stop()
    this.#responder?.stop()
    this.#requester = null
    this.#responder = null
    this.#earlyRecvs = []
    this.#flushSends = []
    this.#flushRecvs = []
    this.protection = null
    this.ip = null
    this.remote = null
    this.wireTarget = null
    this.selectiveRepeat = false
    this.reorderWindow = 0
    this.#attrs = {}
    this.#state = QpState.RESET
  }

  /** Moves the QP to ERR and flushes it (asynchronously). `reason` non-null: the provider did it, so report a 'fatal' event. */
  enterError(reason: string | null): void {
    if (this.#destroyed || this.#state === QpState.ERR) return
    // Asked for by the application: what the responder executed (and completed) is ACKed first.
    if (reason === null && this.#state !== QpState.RESET) this.#responder?.acknowledgeExecuted()
    this.#state = QpState.ERR
    this.#requester?.stop()
    this.#responder?.stop()
    this.#scheduleFlush()
    if (reason !== null && this.#onEvent !== null) setImmediate(emitFatal, this, reason)
  }

  /** CompletionProducer: the CQ overflowed. */
  fatal(reason: string): void {
    this.enterError(reason)
  }

  emitEvent(event: QpEvent): void {
    if (!this.#destroyed) this.#onEvent?.(event)
  }

  setEventHandler(cb: (event: QpEvent) => void): void {
    this.#onEvent = cb
  }

  query(): QpAttrs {
    this.#checkAlive()
    return { ...this.#attrs, state: this.#state, qpn: this.qpn, encrypted: this.protection !== null }
  }

  destroy(): void {
    if (this.#destroyed) return
    if (this.#state !== QpState.ERR && this.#state !== QpState.RESET) this.#responder?.acknowledgeExecuted()
    this.#destroyed = true
    this.#requester?.stop()
    this.#responder?.stop()
    this.#device.removeFlow(this.#flow)
    this.sendCq.detach(this)
    this.recvCq.detach(this)
    this.#device.forgetQp(this)
  }

  // ---- posting

  postSend(wr: SendWorkRequest): void {
    this.#checkAlive()
    const s = this.#state
    if (s === QpState.RESET || s === QpState.INIT || s === QpState.RTR) {
      throw new QpStateError(`cannot post send WRs on QP ${this.qpn} in state ${s}; move it to RTS first`, { state: s })
    }
    const outstanding = (this.#requester?.outstanding ?? 0) + this.#flushSends.length
    if (outstanding >= this.#init.maxSendWr) throw new QueueFullError('send', this.#init.maxSendWr)
    const wqe = createSendWqe(wr, this.#init, this.memory, this.pd)
    if (s === QpState.ERR) {
      this.#flushSends.push(wqe)
      this.#scheduleFlush()
      return
    }
    this.#requester!.post(wqe)
    this.wake()
  }

  postRecv(wr: RecvWorkRequest): void {
    this.#checkAlive()
    if (this.#state === QpState.RESET) throw new QpStateError(`cannot post receive WRs on QP ${this.qpn} in state RESET; move it to INIT first`, { state: this.#state })
    if (wr.sgList.length > this.#init.maxRecvSge) throw new InvalidArgumentError(`${wr.sgList.length} SGEs exceed the QP's maxRecvSge (${this.#init.maxRecvSge})`)
    const posted = (this.#responder?.postedRecvs ?? this.#earlyRecvs.length) + this.#flushRecvs.length
    if (posted >= this.#init.maxRecvWr) throw new QueueFullError('recv', this.#init.maxRecvWr)
    let length = 0
    for (const s of wr.sgList) length += s.length
    const wqe: RecvWqe = { wrId: wr.wrId, sgl: resolveSgl(this.memory, this.pd, wr.sgList, true), length }
    if (this.#state === QpState.ERR) {
      this.#flushRecvs.push(wqe)
      this.#scheduleFlush()
    } else if (this.#responder !== null) this.#responder.postRecv(wqe)
    else this.#earlyRecvs.push(wqe)
  }

  // ---- packets

  /** Handles a decoded (and decrypted) packet addressed to this QP; returns why it was dropped, or null. */
  /** Responder.runPlan, while the QP takes requests (null: the per-packet path). */
  receiveRunPlan(op: number): ReceiveRunPlan | null {
    const s = this.#state
    if (s === QpState.RESET || s === QpState.INIT || s === QpState.ERR || this.#responder === null) return null
    return this.#responder.runPlan(op)
  }

  /** Responder.applyRun for the packets the helper took on the plan receiveRunPlan gave. */
  applyReceiveRun(packets: number, bytes: number, ackRequests: number, ended: boolean): void {
    this.#responder!.applyRun(packets, bytes, ackRequests, ended)
  }

  receivePacket(pkt: RocePacket): DropReason | null {
    const s = this.#state
    if (s === QpState.RESET || s === QpState.INIT || s === QpState.ERR) return 'wrongState'
    if (opcodeInfo(pkt.bth.opcode)!.isRequest) return this.#responder!.receive(pkt)
    if (this.#requester === null) return 'wrongState'
    return this.#requester.receive(pkt)
  }

  /**
   * PacketSource: the scheduler's turn for this QP. Responses go first, except that a bare
   * coalesced ACK lets a ready request pass: the request may be the reply a ping-pong waits for,
   * while the ACK goes out at the end of the receive batch anyway (device.flushAcks).
   */
  sendNextPacket(): number {
    const s = this.#state
    if (s === QpState.ERR || s === QpState.RESET || this.#destroyed) return 0
    const responder = this.#responder
    if (responder !== null && responder.onlyAckDue && this.#requester !== null) {
      const n = this.#requester.transmitNext()
      if (n > 0) return n
    }
    if (responder !== null && responder.hasWork) {
      const n = responder.sendNext()
      if (n > 0) return n
    }
    return this.#requester?.transmitNext() ?? 0
  }

  get latencyTrafficAt(): number {
    return this.#device.latencyTrafficAt
  }

  /** The requester's congestion window (diagnostics, tests); null before RTS or when off. */
  get congestion(): import('./delay-window.js').DelayWindow | null {
    return this.#requester?.congestion ?? null
  }

  flushAck(): void {
    this.#responder?.flushAck()
  }

  // ---- RequesterHost / ResponderHost

  emit(pkt: RocePacket, parts: readonly Uint8Array[], payloadLength: number): number {
    pkt.bth.destQpn = this.destQpn
    const n = this.#device.transmit(this, pkt, parts, payloadLength)
    if (n > 0) {
      this.qpCounters.packetsSent++
      this.qpCounters.bytesSent += n
    }
    return n
  }

  emitRun(pkt: RocePacket, payload: Uint8Array, seg: number, count: number, ackReq: Uint8Array): number {
    const device = this.#device
    if (device.transmitRun === undefined) return 0
    pkt.bth.destQpn = this.destQpn
    const n = device.transmitRun(this, pkt, payload, seg, count, ackReq)
    if (n > 0) {
      this.qpCounters.packetsSent += n
      this.qpCounters.bytesSent += n * (seg + opcodeInfo(pkt.bth.opcode)!.headerLength + HeaderSize.ICRC)
    }
    return n
  }

  /** ProviderQp.metrics: this QP's packets, bytes, retransmits and timeouts. */
  metrics(): ProviderMetrics {
    return { counters: this.qpCounters.counters() }
  }

  requesterMayStart(): boolean {
    return this.#state === QpState.RTS
  }

  requesterMayContinue(): boolean {
    return this.#state === QpState.RTS || this.#state === QpState.SQD
  }

  completeSend(wc: WorkCompletion): void {
    this.sendCq.push(wc, this.#soon())
  }

  completeRecv(wc: WorkCompletion): void {
    this.recvCq.push(wc, this.#soon())
  }

  /** A latency-class completion found while handling a received packet is notified at once (microtask). */
  #soon(): boolean {
    return this.priority === PRIORITY_LATENCY && this.#device.receiving
  }

  requesterFailed(reason: string): void {
    this.enterError(reason)
  }

  responderFailed(reason: string): void {
    this.enterError(reason)
  }

  wake(): void {
    if (!this.#destroyed) this.#device.wakeFlow(this.#flow)
  }

  scheduleAck(): void {
    this.#device.scheduleAck(this)
  }

  // ---- flushing

  #scheduleFlush(): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(runFlush, this)
  }

  /** @internal Completes every outstanding WR with WR_FLUSH_ERR, sends first, each queue in post order. */
  flushNow(): void {
    this.#flushScheduled = false
    if (this.#destroyed || this.#state !== QpState.ERR) return
    const sends = [...(this.#requester?.takeOutstanding() ?? []), ...this.#flushSends]
    const recvs = [...(this.#responder?.takeOutstanding() ?? []), ...this.#earlyRecvs, ...this.#flushRecvs]
    this.#flushSends = []
    this.#flushRecvs = []
    this.#earlyRecvs = []
    for (const w of sends) this.sendCq.push({ wrId: w.wrId, status: WcStatus.WR_FLUSH_ERR, opcode: w.opcode, byteLen: 0, qpn: this.qpn })
    for (const r of recvs) this.recvCq.push({ wrId: r.wrId, status: WcStatus.WR_FLUSH_ERR, opcode: RecvOpcode.RECV, byteLen: 0, qpn: this.qpn })
  }

  #checkAlive(): void {
    if (this.#destroyed) throw new ClosedError(`QP ${this.qpn}`)
  }
}
