/**
 * An RC queue pair: the verbs state machine (transitions checked with core's
 * checkQpTransition), posting, flushing on ERR, and the glue between its
 * requester (send side), responder (receive side), cipher and the fabric.
 */
import {
  canPostRecv,
  canPostSend,
  checkQpTransition,
  QpAttributeError,
  QpState,
  QpStateError,
  QueueFullError,
  WcStatus,
  type ProviderMetrics,
  type ProviderQp,
  type ProviderQpInit,
  type QpAttrs,
  type QpEvent,
  type QpModifyAttrs,
  type QpQos,
  type RecvOpcode,
  type RecvWorkRequest,
  type SendWorkRequest,
  type WorkCompletion,
} from '@rdma-session/provider-interface'
import { ackTimeoutMs, QP_DEFAULTS } from '@rdma-session/rc-engine'
import type { DropReason } from './fabric-stats.js'
import { hostKey } from './host-key.js'
import type { CompletionProducer, MockCq } from './mock-cq.js'
import type { MockDevice } from './mock-device.js'
import type { MockPd } from './mock-pd.js'
import { isRequest, type Packet } from './packet.js'
import { PacketCipher } from './packet-cipher.js'
import { Requester, type RequesterSnapshot } from './requester.js'
import { Responder } from './responder.js'
import { MockTransportCounters } from './transport-counters.js'
import { recvWqeFrom, sendWqeFrom, type SendWqe } from './work-queue-entries.js'

type MutableAttrs = { -readonly [K in keyof QpAttrs]?: QpAttrs[K] }

function flushLater(qp: MockQp): void {
  qp.runFlush()
}

function emitFatal(qp: MockQp, reason: string): void {
  qp.emitEvent({ type: 'fatal', qpn: qp.qpn, reason })
}

/** What a QP looks like inside, for tests and debugging. */
export interface QpSnapshot {
  readonly qpn: number
  readonly state: QpState
  readonly requester: RequesterSnapshot | null
  /** PSN the responder expects next. */
  readonly expectedPsn: number | null
  readonly postedRecvs: number
  readonly encryptionEpoch: number | null
}

export class MockQp implements ProviderQp, CompletionProducer {
  // Connection attributes, applied by modify(); read by the requester and responder.
  remoteKey = ''
  destQpn = 0
  mtu: number = QP_DEFAULTS.pathMtu
  accessFlags = 0
  minRnrTimer: number = QP_DEFAULTS.minRnrTimer
  ackTimeoutMs = 0
  retryCnt: number = QP_DEFAULTS.retryCnt
  rnrRetry: number = QP_DEFAULTS.rnrRetry
  maxRdAtomic: number = QP_DEFAULTS.maxRdAtomic
  cipher: PacketCipher | null = null
  requester: Requester | null = null
  responder: Responder | null = null
  /** Packets, retransmits, NAKs by kind and drops by reason of this QP. */
  readonly counters = new MockTransportCounters()

  readonly maxSendWr: number
  readonly maxRecvWr: number
  readonly maxSendSge: number
  readonly maxRecvSge: number
  readonly maxInlineData: number
  readonly qos: QpQos

  #state: QpState = QpState.RESET
  #attrs: MutableAttrs | null = null
  #onEvent: ((event: QpEvent) => void) | null = null
  #flushPending = false
  #destroyed = false

  constructor(
    readonly pd: MockPd,
    readonly device: MockDevice,
    readonly qpn: number,
    readonly sendCq: MockCq,
    readonly recvCq: MockCq,
    init: ProviderQpInit,
  ) {
    this.maxSendWr = init.maxSendWr
    this.maxRecvWr = init.maxRecvWr
    this.maxSendSge = init.maxSendSge
    this.maxRecvSge = init.maxRecvSge
    this.maxInlineData = init.maxInlineData
    this.qos = init.qos
    this.ackTimeoutMs = ackTimeoutMs(QP_DEFAULTS.timeout, 0, device.fabric.maxAckTimeoutMs)
    sendCq.attach(this)
    recvCq.attach(this)
  }

  get state(): QpState {
    return this.#state
  }

  get destroyed(): boolean {
    return this.#destroyed
  }

  modify(attrs: QpModifyAttrs): void {
    this.#checkAlive()
    const from = this.#state
    checkQpTransition(from, attrs)
    const to = attrs.state
    if (attrs.encryption !== undefined && to === QpState.RTS) this.#rekey(attrs)
    if (to === QpState.RESET) return this.#reset()
    if (to === QpState.ERR) return this.enterError(null)
    this.#apply(attrs)
    if (to === QpState.RTR && from === QpState.INIT) {
      this.remoteKey = hostKey(attrs.remote!.address, attrs.remote!.port)
      this.destQpn = attrs.destQpn!
      this.mtu = attrs.pathMtu!
      this.cipher = attrs.encryption ? new PacketCipher(attrs.encryption, this.qpn) : null
      ;(this.responder ??= new Responder(this)).connect(attrs.rqPsn!, attrs.maxDestRdAtomic ?? 16)
    }
    if (to === QpState.RTS && from === QpState.RTR) this.requester = new Requester(this, attrs.sqPsn!)
    this.#state = to
    if (to === QpState.RTS) this.requester?.wake()
  }

  query(): QpAttrs {
    this.#checkAlive()
    return { ...this.#attrs, state: this.#state, qpn: this.qpn, encrypted: this.cipher !== null }
  }

  postSend(wr: SendWorkRequest): void {
    this.#checkAlive()
    if (!canPostSend(this.#state)) throw new QpStateError(`cannot post send WRs on QP ${this.qpn} in state ${this.#state}; move it to RTS first`, { state: this.#state })
    const requester = (this.requester ??= new Requester(this, 0))
    if (requester.outstanding >= this.maxSendWr) throw new QueueFullError('send', this.maxSendWr)
    requester.post(sendWqeFrom(wr, this.maxSendSge, this.maxInlineData))
    if (this.#state === QpState.ERR) this.#scheduleFlush()
  }

  postRecv(wr: RecvWorkRequest): void {
    this.#checkAlive()
    if (!canPostRecv(this.#state)) throw new QpStateError(`cannot post receive WRs on QP ${this.qpn} in state ${this.#state}; move it to INIT first`, { state: this.#state })
    const responder = (this.responder ??= new Responder(this))
    if (responder.outstanding >= this.maxRecvWr) throw new QueueFullError('recv', this.maxRecvWr)
    responder.post(recvWqeFrom(wr, this.maxRecvSge))
    if (this.#state === QpState.ERR) this.#scheduleFlush()
  }

  setEventHandler(cb: (event: QpEvent) => void): void {
    this.#onEvent = cb
  }

  destroy(): void {
    if (this.#destroyed) return
    this.#destroyed = true
    this.requester?.retire()
    this.requester = null
    this.responder = null
    this.cipher = null
    this.#onEvent = null
    this.sendCq.detach(this)
    this.recvCq.detach(this)
    this.device.forgetQp(this)
    this.pd.forgetQp(this)
  }

  snapshot(): QpSnapshot {
    return {
      qpn: this.qpn,
      state: this.#state,
      requester: this.requester?.snapshot() ?? null,
      expectedPsn: this.#state === QpState.RESET || this.#state === QpState.INIT ? null : (this.responder?.expectedPsn ?? null),
      postedRecvs: this.responder?.outstanding ?? 0,
      encryptionEpoch: this.cipher?.epoch ?? null,
    }
  }

  // ---- internal: used by the device, the requester, the responder and CQs

  /** Handles a packet addressed to this QP; returns why it was dropped, or null. */
  receive(packet: Packet): DropReason | null {
    const s = this.#state
    if (s === QpState.RESET || s === QpState.INIT || s === QpState.ERR) return 'wrongState'
    if (packet.srcQpn !== this.destQpn || packet.src !== this.remoteKey) return 'wrongSource'
    let data = packet.payload
    if (this.cipher !== null) {
      const opened = this.cipher.open(packet)
      if (typeof opened === 'string') return opened
      data = opened
    } else if (packet.sealed) {
      return 'encryptionMismatch'
    }
    if (isRequest(packet.opcode)) return this.responder!.onRequest(packet, data)
    return this.requester?.onResponse(packet, data) ?? null
    return null
  }

  /** Seals (when encrypted) and puts a packet on the fabric. */
  transmit(packet: Packet): void {
    if (this.cipher !== null && !this.cipher.seal(packet)) {
      this.enterError('nonce space of the tx key is used up; rekey before 2^40 packets')
      return
    }
    this.counters.sent(packet)
    this.device.transmit(packet)
  }

  /** This QP's transport counters (SPI metrics hook). */
  metrics(): ProviderMetrics {
    return this.counters.metrics()
  }

  /** Moves the QP to ERR and flushes it (asynchronously). `reason` non-null: the provider did it, so report a 'fatal' event. */
  enterError(reason: string | null): void {
    if (this.#destroyed || this.#state === QpState.ERR) return
    this.#state = QpState.ERR
    this.requester?.stop()
    this.#scheduleFlush()
    if (reason !== null && this.#onEvent !== null) setImmediate(emitFatal, this, reason)
  }

  /** The CQ overflowed. */
  fatal(reason: string): void {
    this.enterError(reason)
  }

  emitEvent(event: QpEvent): void {
    this.#onEvent?.(event)
  }

  runFlush(): void {
    this.#flushPending = false
    if (this.#destroyed || this.#state !== QpState.ERR) return
    this.requester?.flush()
    this.responder?.flush()
  }

  completeSend(w: SendWqe, status: WcStatus, vendorErr: number | undefined): void {
    const byteLen = status === WcStatus.SUCCESS ? w.length : 0
    const wc: WorkCompletion =
      vendorErr === undefined ? { wrId: w.wrId, status, opcode: w.opcode, byteLen, qpn: this.qpn } : { wrId: w.wrId, status, opcode: w.opcode, byteLen, qpn: this.qpn, vendorErr }
    this.sendCq.push(wc)
  }

  completeRecv(wrId: number, status: WcStatus, opcode: RecvOpcode, byteLen: number, imm: number | undefined): void {
    const wc: WorkCompletion = imm === undefined ? { wrId, status, opcode, byteLen, qpn: this.qpn } : { wrId, status, opcode, byteLen, qpn: this.qpn, imm }
    this.recvCq.push(wc)
  }

  // ---- private

  #checkAlive(): void {
    if (this.#destroyed) throw new QpStateError(`QP ${this.qpn} is destroyed`, { qpn: this.qpn })
  }

  #apply(attrs: QpModifyAttrs): void {
    const a = (this.#attrs ??= {})
    for (const key of Object.keys(attrs) as (keyof QpModifyAttrs)[]) {
      const v = attrs[key]
      if (key === 'state' || key === 'encryption' || v === undefined) continue
      ;(a as Record<string, unknown>)[key] = typeof v === 'object' && v !== null ? { ...v } : v
    }
    if (attrs.accessFlags !== undefined) this.accessFlags = attrs.accessFlags
    if (attrs.minRnrTimer !== undefined) this.minRnrTimer = attrs.minRnrTimer
    if (attrs.timeout !== undefined) this.ackTimeoutMs = ackTimeoutMs(attrs.timeout, 0, this.device.fabric.maxAckTimeoutMs)
    if (attrs.retryCnt !== undefined) this.retryCnt = attrs.retryCnt
    if (attrs.rnrRetry !== undefined) this.rnrRetry = attrs.rnrRetry
    if (attrs.maxRdAtomic !== undefined) this.maxRdAtomic = Math.max(1, attrs.maxRdAtomic)
  }

  /** RTS -> RTS (or SQD -> RTS) with new keys. Checked before anything changes. */
  #rekey(attrs: QpModifyAttrs): void {
    const enc = attrs.encryption
    if (enc === null || enc === undefined) throw new QpAttributeError('encryption', 'cannot be turned off on a connected QP; move the QP to RESET and reconnect it')
    if (this.cipher === null) throw new QpAttributeError('encryption', 'the QP was connected without encryption; keys can only be installed at INIT -> RTR')
    this.cipher.rekey(enc, this.device.fabric.rekeyGraceMs)
  }

  #reset(): void {
    this.requester?.retire()
    this.requester = null
    this.responder = null
    this.cipher = null
    this.#attrs = null
    this.remoteKey = ''
    this.destQpn = 0
    this.mtu = QP_DEFAULTS.pathMtu
    this.accessFlags = 0
    this.minRnrTimer = QP_DEFAULTS.minRnrTimer
    this.ackTimeoutMs = ackTimeoutMs(QP_DEFAULTS.timeout, 0, this.device.fabric.maxAckTimeoutMs)
    this.retryCnt = QP_DEFAULTS.retryCnt
    this.rnrRetry = QP_DEFAULTS.rnrRetry
    this.maxRdAtomic = QP_DEFAULTS.maxRdAtomic
    this.#state = QpState.RESET
  }

  #scheduleFlush(): void {
    if (this.#flushPending) return
    this.#flushPending = true
    setImmediate(flushLater, this)
  }
}
