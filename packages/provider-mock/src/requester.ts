/**
 * The send side of an RC QP: assigns PSNs, hands messages to the host's egress
 * scheduler segment by segment, matches ACKs, NAKs and READ/atomic responses to
 * WRs, retransmits go-back-N on a sequence NAK or a timeout, waits out RNR NAKs,
 * and completes WRs in post order. A response is accepted only for a PSN already
 * transmitted (as IB specifies and kernel rxe does); one beyond is a ghost
 * (forged or corrupt): dropped, counted, and it changes nothing.
 */
import { Opcode, WcStatus } from '@rdma-session/provider-interface'
import type { DropReason } from './fabric-stats.js'
import { EgressFlow, type EgressSource } from './egress-scheduler.js'
import { scatter } from './local-memory.js'
import type { MockQp } from './mock-qp.js'
import { HEADER_BYTES, NAK_CODES, Packet } from './packet.js'
import { requestPayload } from './request-payload.js'
import { psnAdd, psnDiff, RNR_RETRY_INFINITE } from '@rdma-session/rc-engine'
import type { SendWqe } from './work-queue-entries.js'

function retransmitTimeout(r: Requester): void {
  r.onTimeout()
}

function rnrWaitOver(r: Requester): void {
  r.onRnrTimer()
}

/** What the requester's state looks like, for tests and debugging. */
export interface RequesterSnapshot {
  /** PSN the next posted WR gets. */
  readonly nextPsn: number
  /** WRs posted and not yet completed. */
  readonly outstanding: number
  /** WRs sent and waiting for their ACK or response. */
  readonly inFlight: number
  /** Timeouts and sequence NAKs since the last progress. */
  readonly retries: number
  readonly rnrRetries: number
}

export class Requester implements EgressSource {
  #wqes: (SendWqe | undefined)[] = []
  /** Oldest outstanding WR. */
  #first = 0
  /** Next WR to (re)transmit. */
  #cursor = 0
  /** One past the furthest WR ever transmitted. */
  #sentEnd = 0
  /** Segments of wqes[cursor] already sent, out of #segments. */
  #segment = 0
  #segments = 1
  #payload: Uint8Array | null = null
  #prepared = false
  #nextPsn: number
  /** One past the last PSN transmitted: responses must be for PSNs before it. */
  #sentPsnEnd: number
  #retries = 0
  #rnrRetries = 0
  #progressed = false
  /** READ and atomic WRs in [first, cursor), bounded by the QP's maxRdAtomic. */
  #readsInFlight = 0
  #timer: NodeJS.Timeout | null = null
  #rnrTimer: NodeJS.Timeout | null = null
  #flow: EgressFlow | null = null
  #retired = false

  constructor(
    private readonly qp: MockQp,
    sqPsn: number,
  ) {
    this.#nextPsn = sqPsn
    this.#sentPsnEnd = sqPsn
  }

  get outstanding(): number {
    return this.#wqes.length - this.#first
  }

  snapshot(): RequesterSnapshot {
    return { nextPsn: this.#nextPsn, outstanding: this.outstanding, inFlight: this.#cursor - this.#first, retries: this.#retries, rnrRetries: this.#rnrRetries }
  }

  post(w: SendWqe): void {
    const mtu = this.qp.mtu
    w.psn = this.#nextPsn
    w.packets = w.opcode === Opcode.ATOMIC_CMP_AND_SWP || w.opcode === Opcode.ATOMIC_FETCH_AND_ADD || w.length <= mtu ? 1 : Math.ceil(w.length / mtu)
    this.#nextPsn = psnAdd(this.#nextPsn, w.packets)
    this.#wqes.push(w)
    if (this.qp.state === 'RTS') this.wake()
  }

  /** Asks the scheduler for a turn when there is something to send. */
  wake(): void {
    if (this.#cursor >= this.#wqes.length) return
    const qos = this.qp.qos
    this.#flow ??= new EgressFlow(this, qos.weight, qos.rateLimitBps)
    this.qp.device.scheduler.wake(this.#flow)
  }

  /** Cancels timers (the QP left RTS for ERR or RESET, or was destroyed). */
  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#rnrTimer !== null) clearTimeout(this.#rnrTimer)
    this.#timer = this.#rnrTimer = null
  }

  /** The QP was reset or destroyed: drop everything, send nothing more, complete nothing. */
  retire(): void {
    this.stop()
    this.#retired = true
    this.#wqes = []
    this.#first = this.#cursor = this.#sentEnd = 0
  }

  /** Completes every outstanding WR with WR_FLUSH_ERR, in post order. */
  flush(): void {
    this.stop()
    while (this.#first < this.#wqes.length) this.#completeHead(WcStatus.WR_FLUSH_ERR)
  }

  // ---- EgressSource

  nextSegmentBytes(): number {
    const qp = this.qp
    if (this.#retired || (qp.state !== 'RTS' && !(qp.state === 'SQD' && this.#segment > 0))) return -1
    if (this.#rnrTimer !== null || this.#cursor >= this.#wqes.length) return -1
    const w = this.#wqes[this.#cursor]!
    if (!this.#prepared) {
      if (w.localError === null && w.needsResponse && this.#readsInFlight >= qp.maxRdAtomic) return -1
      if (w.localError === null && !this.#prepare(w)) w.localError = WcStatus.LOC_PROT_ERR
      if (w.localError !== null) {
        // Fenced: the WR fails once everything before it has completed.
        if (this.#cursor === this.#first) this.#fail(w.localError, undefined, `local error ${w.localError} on ${w.opcode}`)
        return -1
      }
      this.#prepared = true
    }
    const bytes = w.requestBytes
    const mtu = qp.mtu
    return (this.#segment < this.#segments - 1 ? mtu : bytes - (this.#segments - 1) * mtu) + HEADER_BYTES
  }

  sendSegment(): void {
    if (++this.#segment < this.#segments) return
    const qp = this.qp
    const w = this.#wqes[this.#cursor]!
    const p = new Packet(qp.device.key, qp.remoteKey, qp.qpn, qp.destQpn, w.opcode, w.psn, w.packets, w.length, this.#payload!)
    p.remoteAddr = w.remoteAddr
    p.rkey = w.rkey
    p.imm = w.imm
    this.#payload = null
    this.#prepared = false
    this.#segment = 0
    if (w.needsResponse) this.#readsInFlight++
    if (this.#cursor < this.#sentEnd) {
      // Counted in wire packets (the MTU-sized segments of this request), as TransportCounters defines.
      qp.counters.retransmits += this.#segments
      qp.device.counters.retransmits += this.#segments
    }
    if (++this.#cursor > this.#sentEnd) this.#sentEnd = this.#cursor
    const end = psnAdd(w.psn, w.packets)
    if (psnDiff(end, this.#sentPsnEnd) > 0) this.#sentPsnEnd = end
    this.#armTimer()
    qp.transmit(p)
  }

  /** Checks the local SGEs and gathers the request payload; false on a protection error. */
  #prepare(w: SendWqe): boolean {
    const qp = this.qp
    const payload = requestPayload(qp.device.memory, qp.pd, w)
    if (payload === null) return false
    this.#payload = payload
    const bytes = w.requestBytes
    this.#segments = bytes <= qp.mtu ? 1 : Math.ceil(bytes / qp.mtu)
    this.#segment = 0
    return true
  }

  // ---- responses

  /** Handles a response; returns why it was dropped (`ghostAck`: for a PSN not transmitted yet), or null. */
  onResponse(packet: Packet, data: Uint8Array): DropReason | null {
    if (this.#retired) return null
    // At or past the first PSN not transmitted (within half the PSN space; further is stale).
    if (psnDiff(packet.psn, this.#sentPsnEnd) >= 0) return 'ghostAck'
    switch (packet.opcode) {
      case 'ACK':
        this.#ackThrough(packet.psn, true)
        break
      case 'READ_RESPONSE':
      case 'ATOMIC_ACKNOWLEDGE':
        this.#onDataResponse(packet, data)
        break
      case 'NAK':
        this.#onNak(packet)
        break
      default:
        return null
    }
    if (this.qp.state === 'RTS') this.wake()
    return null
  }

  #onDataResponse(packet: Packet, data: Uint8Array): void {
    const w = this.#respondedHead(packet.psn)
    if (w === null || !w.needsResponse) return
    const isRead = w.opcode === Opcode.RDMA_READ
    if (isRead !== (packet.opcode === 'READ_RESPONSE') || data.length !== (isRead ? w.length : 8)) {
      this.#fail(WcStatus.BAD_RESP_ERR, undefined, `bad response ${packet.opcode} of ${data.length} bytes to ${w.opcode}`)
      return
    }
    if (!scatter(this.qp.device.memory, this.qp.pd, w.sges, data)) {
      this.#fail(WcStatus.LOC_PROT_ERR, undefined, `local protection error writing the ${w.opcode} result`)
      return
    }
    this.#progress()
    this.#completeHead(WcStatus.SUCCESS)
  }

  #onNak(packet: Packet): void {
    const w = this.#respondedHead(packet.psn)
    if (w === null) return
    const qp = this.qp
    const code = packet.syndrome === null ? undefined : NAK_CODES[packet.syndrome]
    switch (packet.syndrome) {
      case 'PSN_SEQUENCE_ERROR':
        // Waiting out an RNR NAK already means going back to the head: not another retry.
        if (this.#rnrTimer !== null) break
        if (++this.#retries > qp.retryCnt) this.#fail(WcStatus.RETRY_EXC_ERR, code, 'retry count exceeded after sequence errors')
        else this.#rewind()
        break
      case 'RNR':
        if (qp.rnrRetry !== RNR_RETRY_INFINITE && ++this.#rnrRetries > qp.rnrRetry) {
          this.#fail(WcStatus.RNR_RETRY_EXC_ERR, code, 'RNR retry count exceeded: the peer posted no receive')
        } else {
          this.#rewind()
          this.#rnrTimer = setTimeout(rnrWaitOver, Math.max(0, packet.rnrDelayMs), this)
          if (!qp.device.fabric.refTimers) this.#rnrTimer.unref()
        }
        break
      case 'INVALID_REQUEST':
        this.#fail(WcStatus.REM_INV_REQ_ERR, code, 'the peer rejected the request as invalid')
        break
      case 'REMOTE_ACCESS_ERROR':
        this.#fail(WcStatus.REM_ACCESS_ERR, code, 'remote access error: bad rkey, range or access rights')
        break
      default:
        this.#fail(WcStatus.REM_OP_ERR, code, 'remote operational error')
    }
  }

  /**
   * Completes the WRs a response to `psn` implicitly acknowledges and returns the
   * head WR if it is the one the response is for; null for a stale response.
   */
  #respondedHead(psn: number): SendWqe | null {
    if (!this.#ackThrough(psn, false) || this.#first >= this.#sentEnd) return null
    const w = this.#wqes[this.#first]!
    return w.psn === psn ? w : null
  }

  /**
   * Completes sent WRs whose last PSN is before `psn` (or up to it, `inclusive`).
   * A READ or atomic among them lost its response: retransmit from it (implied NAK) and return false.
   */
  #ackThrough(psn: number, inclusive: boolean): boolean {
    while (this.#first < this.#sentEnd) {
      const w = this.#wqes[this.#first]!
      const d = psnDiff(psnAdd(w.psn, w.packets - 1), psn)
      if (inclusive ? d > 0 : d >= 0) break
      if (w.needsResponse) {
        this.#rewind()
        return false
      }
      this.#progress()
      this.#completeHead(WcStatus.SUCCESS)
    }
    return true
  }

  #progress(): void {
    this.#retries = 0
    this.#rnrRetries = 0
    this.#progressed = true
  }

  /** Go-back-N: retransmit everything from the oldest outstanding WR. Nothing is in flight now, so the ACK timer restarts with the retransmission. */
  #rewind(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#cursor = this.#first
    this.#segment = 0
    this.#prepared = false
    this.#payload = null
    this.#readsInFlight = 0
  }

  #fail(status: WcStatus, vendorErr: number | undefined, reason: string): void {
    this.#completeHead(status, vendorErr)
    this.qp.enterError(reason)
  }

  #completeHead(status: WcStatus, vendorErr?: number): void {
    const i = this.#first
    const w = this.#wqes[i]!
    this.#wqes[i] = undefined
    if (i < this.#cursor) {
      if (w.needsResponse) this.#readsInFlight--
    } else {
      // It was about to be (re)sent: skip it.
      this.#cursor = i + 1
      this.#segment = 0
      this.#prepared = false
      this.#payload = null
    }
    this.#first = i + 1
    if (this.#sentEnd < this.#first) this.#sentEnd = this.#first
    if (status !== WcStatus.SUCCESS || w.signaled) this.qp.completeSend(w, status, vendorErr)
    this.#compact()
  }

  #compact(): void {
    const n = this.#first
    if (n === this.#wqes.length) {
      this.#wqes = []
      this.#first = this.#cursor = this.#sentEnd = 0
    } else if (n >= 1024 && n * 2 >= this.#wqes.length) {
      this.#wqes = this.#wqes.slice(n)
      this.#first = 0
      this.#cursor -= n
      this.#sentEnd -= n
    }
  }

  // ---- timers

  #armTimer(): void {
    const ms = this.qp.ackTimeoutMs
    if (this.#timer !== null || ms === Infinity) return
    this.#progressed = false
    this.#timer = setTimeout(retransmitTimeout, ms, this)
    if (!this.qp.device.fabric.refTimers) this.#timer.unref()
  }

  /** @internal The retransmit timer fired. */
  onTimeout(): void {
    this.#timer = null
    const qp = this.qp
    if ((qp.state !== 'RTS' && qp.state !== 'SQD') || this.#first >= this.#cursor) return
    // Progress since the timer was armed, or packets still queued on the wire (the event loop was busy): not a loss.
    if (this.#progressed || qp.device.fabric.delivering) {
      this.#armTimer()
      return
    }
    qp.counters.timeouts++
    qp.device.counters.timeouts++
    if (++this.#retries > qp.retryCnt) {
      this.#fail(WcStatus.RETRY_EXC_ERR, undefined, 'retry count exceeded: the peer does not answer')
      return
    }
    this.#rewind()
    this.wake()
  }

  /** @internal The RNR wait is over. */
  onRnrTimer(): void {
    this.#rnrTimer = null
    if (this.qp.state === 'RTS') this.wake()
  }
}
