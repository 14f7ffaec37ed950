/**
 * The RC requester of one QP: segments WQEs into packets with 24-bit PSNs,
 * keeps a window of unacknowledged packets, matches ACKs, READ responses and
 * atomic ACKs, retransmits go-back-N (local ACK timeout, PSN sequence NAK, RNR
 * NAK) and turns NAKs and exhausted retries into completion errors. A response
 * is accepted only for a PSN actually transmitted (IBTA 9.9.1.1, as kernel rxe
 * does): one beyond is a ghost (forged or corrupt) and changes nothing. With selective repeat
 * (the peer announced it) a SACK NAK names the missing PSNs of SENDs and WRITEs, and only those
 * are sent again; a SACK naming a PSN not transmitted is dropped (`badSack`).
 */
import { WcStatus, type WorkCompletion } from '@rdma-session/provider-interface'
import { NakCode } from '../wire/aeth.js'
import { HeaderSize, RcOpcode } from '../wire/opcodes.js'
import { ackTimeoutMs, psnAdd, psnDiff, psnLess, psnLessOrEqual, rnrDelayMs, RNR_RETRY_INFINITE, type TransportCounters } from '@rdma-session/rc-engine'
import type { RocePacket } from '../wire/packet.js'
import { gatherViews, scatter } from '../memory/scatter-gather.js'
import type { DeviceCounters, DropReason } from './device-counters.js'
import type { RcTimers } from './timer-options.js'
import { WqeKind, type SendWqe } from './send-wqe.js'
import { newPacket } from './packet-template.js'
import { RetransmitTimer } from './retransmit-timer.js'
import { DelayWindow, type DelayWindowConfig } from './delay-window.js'
import { fillRequestPacket } from './request-packets.js'
import { SendTimes } from './send-times.js'
import { SelectiveRetransmit } from './selective-retransmit.js'
import { parseSack, sackHas, sackPsn } from '../wire/sack.js'
import { performance } from 'node:perf_hooks'

/** What the requester needs from its QP. */
export interface RequesterHost {
  readonly qpn: number
  readonly counters: DeviceCounters
  readonly qpCounters: TransportCounters
  readonly timers: RcTimers
  /** Packets the requester may have unacknowledged. */
  readonly windowPackets: number
  /** Unsignaled WRs do not set AckReq on their last packet (see SoftRoceOptions.lazyAcks). */
  readonly lazyAcks: boolean
  /** The delay-based congestion window's settings; null: the window is windowPackets, fixed. */
  readonly delayWindow: DelayWindowConfig | null
  /** Selective repeat with this peer (both ends announced it): SACK NAKs are honored. */
  readonly selectiveRepeat: boolean
  /** When a latency-class QP of the device last accepted a packet (performance.now(); -Infinity: never). */
  readonly latencyTrafficAt: number
  /** True while the QP may transmit requests (RTS, or SQD for WQEs already started). */
  requesterMayStart(): boolean
  requesterMayContinue(): boolean
  /** Sends one packet (headers from `pkt`, payload from `parts`); returns the bytes sent. */
  emit(pkt: RocePacket, parts: readonly Uint8Array[], payloadLength: number): number
  /**
   * Sends `count` middle packets of one message, `seg` payload bytes each from `payload`, headers
   * from `pkt` for the first (PSN + k and AckReq from ackReq[k] for packet k), framed by the socket
   * helper; returns the packets sent, 0 when runs are not available now (send them one by one).
   */
  emitRun?(pkt: RocePacket, payload: Uint8Array, seg: number, count: number, ackReq: Uint8Array): number
  completeSend(wc: WorkCompletion): void
  /** A WQE failed: the QP must enter ERR (the failed WQE has completed already). */
  requesterFailed(reason: string): void
  /** New packets may be ready. */
  wake(): void
}

/**
 * The requester sets AckReq on the last packet of each signaled message, when this many packets
 * went out without one, and when half the window is in flight. Counting since the last AckReq
 * (rather than at fixed PSNs) lets a stream signaled every 16th WR ask for one ACK per 16, not two.
 */
const ACK_REQ_EVERY = 16

const SEQ_NAK = 0x60 | NakCode.PSN_SEQUENCE_ERROR
/** Middle packets of a message sent as one run at most (socket/send-run.ts RUN_MAX_PACKETS). */
const RUN_PACKETS = 32
/** Fewer middle packets go one by one: a short run saves little and splits the scheduler round's sendmmsg (bench write-throughput, 16 KiB). */
const RUN_MIN_PACKETS = 4
/** Selective repeat probes after this fraction of the ACK timeout without progress (see #probeFired). */
const PROBE_FRACTION = 8

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555)
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333)
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24)
}

const NAK_STATUS: Record<number, WcStatus> = {
  [NakCode.INVALID_REQUEST]: WcStatus.REM_INV_REQ_ERR,
  [NakCode.REMOTE_ACCESS_ERROR]: WcStatus.REM_ACCESS_ERR,
  [NakCode.REMOTE_OPERATIONAL_ERROR]: WcStatus.REM_OP_ERR,
  [NakCode.INVALID_RD_REQUEST]: WcStatus.REM_INV_REQ_ERR,
}

export class Requester {
  readonly #host: RequesterHost
  readonly #pmtu: number
  /** WQEs from #head on; slots before it are cleared as WQEs retire (a retired WQE must not outlive its completion). */
  readonly #wqes: (SendWqe | undefined)[] = []
  /** Index of the oldest WQE not completed. */
  #head = 0
  /** Index and packet of the next packet to transmit (moved back by go-back-N). */
  #txIdx = 0
  #txPkt = 0
  /** Packets sent since the last one that carried AckReq. */
  #sinceAckReq = 0
  /** The PSN the next new WQE starts at. */
  #freshPsn: number
  /**
   * One past the highest PSN transmitted; a READ request counts the responses it asks for.
   * Responses are valid below it only: #freshPsn jumps to the end of a WQE when its first
   * packet leaves, so it must not bound them (an ACK for an unsent PSN would complete the WQE).
   */
  #sentEnd: number
  /** The oldest unacknowledged PSN. */
  #una: number
  #rdAtomicInFlight = 0
  readonly #maxRdAtomic: number
  readonly #retryCnt: number
  readonly #rnrRetry: number
  #retryLeft: number
  #rnrLeft: number
  readonly #timer: RetransmitTimer
  #rnrTimer: NodeJS.Timeout | null = null
  #stopped = false
  readonly #pkt = newPacket()
  readonly #parts: Uint8Array[] = []
  /** AckReq per packet of a run (#emitRun). */
  readonly #runAckReq = new Uint8Array(RUN_PACKETS)
  /** The congestion window (null: fixed at windowPackets) and the send time of recent PSNs. */
  readonly #cc: DelayWindow | null
  /** Send times of in-flight packets (RTT samples of the delay window); null without one. */
  readonly #sent: SendTimes | null
  /** Selective repeat: send order and the PSNs to send again (null: go-back-N only). */
  readonly #sr: SelectiveRetransmit | null
  /**
   * Selective repeat: packets past #una the latest SACK said the responder holds. They are not in
   * flight any more, so they do not count against the congestion window (they still do against
   * windowPackets, the responder's reorder window). 0 after a positive ACK (nothing held then).
   */
  #sacked = 0
  /** Selective repeat: fires after PROBE_FRACTION of the ACK timeout without a transmission or ACK (null: go-back-N). */
  readonly #probeTimer: RetransmitTimer | null
  /** Probe PSNs queued and not sent yet (their transmission does not restart the ACK timeout). */
  #probesQueued = 0
  /** A gap was reported since the last positive ACK: that ACK's round trip includes the repair, not a sample. */
  #repairing = false

  constructor(host: RequesterHost, attrs: { sqPsn: number; pmtu: number; timeout: number; retryCnt: number; rnrRetry: number; maxRdAtomic: number }) {
    this.#host = host
    this.#pmtu = attrs.pmtu
    this.#freshPsn = attrs.sqPsn
    this.#sentEnd = attrs.sqPsn
    this.#una = attrs.sqPsn
    this.#timer = new RetransmitTimer(ackTimeoutMs(attrs.timeout, host.timers.ackTimeoutMinMs, host.timers.ackTimeoutMaxMs), () => this.#timerFired())
    this.#retryCnt = attrs.retryCnt
    this.#rnrRetry = attrs.rnrRetry
    this.#retryLeft = attrs.retryCnt
    this.#rnrLeft = attrs.rnrRetry
    this.#maxRdAtomic = Math.max(1, attrs.maxRdAtomic)
    const cfg = host.delayWindow
    this.#cc = cfg === null ? null : new DelayWindow(host.windowPackets, cfg)
    this.#sent = cfg === null ? null : new SendTimes(2 ** Math.ceil(Math.log2(Math.max(2, host.windowPackets * 2))))
    this.#sr = host.selectiveRepeat ? new SelectiveRetransmit(host.windowPackets) : null
    this.#probeTimer = host.selectiveRepeat ? new RetransmitTimer(Math.max(1, this.#timer.timeoutMs / PROBE_FRACTION), () => this.#probeFired()) : null
  }

  /** The congestion window (diagnostics, tests); null when the window is fixed. */
  get congestion(): DelayWindow | null {
    return this.#cc
  }

  /** Packets that may be unacknowledged now: the device window, or less under delay. */
  get window(): number {
    const W = this.#host.windowPackets
    const cc = this.#cc
    return cc === null ? W : Math.min(W, cc.packets)
  }

  /** WQEs posted and not completed. */
  get outstanding(): number {
    return this.#wqes.length - this.#head
  }

  /** The next PSN a new request would use. */
  get nextPsn(): number {
    return this.#freshPsn
  }

  post(wqe: SendWqe): void {
    wqe.setPackets(this.#pmtu)
    this.#wqes.push(wqe)
  }

  /** True when a packet could go out now (ignoring the scheduler's share). */
  get hasWork(): boolean {
    return !this.#stopped && (this.#txIdx < this.#wqes.length || (this.#sr?.pending ?? 0) > 0) && this.#rnrTimer === null
  }

  /** Stops all activity (QP left RTS for ERR/RESET, or was destroyed). */
  stop(): void {
    this.#stopped = true
    this.#sr?.clear()
    this.#probeTimer?.dispose()
    this.#timer.dispose()
    if (this.#rnrTimer !== null) clearTimeout(this.#rnrTimer)
    this.#rnrTimer = null
  }

  /** Removes and returns the WQEs not completed, in post order (for flushing). */
  takeOutstanding(): SendWqe[] {
    const rest = this.#wqes.slice(this.#head) as SendWqe[]
    this.#wqes.length = 0
    this.#head = this.#txIdx = this.#txPkt = 0
    return rest
  }

  // ---- transmit

  /** Sends the next packet if the window, maxRdAtomic and the QP state allow; returns its bytes, or 0. */
  transmitNext(): number {
    if (this.#stopped || this.#rnrTimer !== null) return 0
    if (this.#sr !== null && this.#sr.pending > 0) {
      const n = this.#retransmitNext(this.#sr)
      if (n > 0) return n
    }
    const wqes = this.#wqes
    while (this.#txIdx < wqes.length) {
      const w = wqes[this.#txIdx]!
      if (w.done) {
        this.#advanceWqe()
        continue
      }
      if (w.error !== null) {
        if (this.#txIdx === this.#head) this.#fail(w, w.error, `local error ${w.error} in WR ${w.wrId}`)
        return 0
      }
      if (!w.started) {
        if (!this.#host.requesterMayStart()) return 0
        if (w.isReadOrAtomic && this.#rdAtomicInFlight >= this.#maxRdAtomic) return 0
      } else if (!this.#host.requesterMayContinue()) return 0
      const psn = w.firstPsn >= 0 ? psnAdd(w.firstPsn, this.#txPkt) : this.#freshPsn
      const W = this.#host.windowPackets
      const inFlight = psnDiff(psn, this.#txIdx === this.#head ? this.#windowBase() : this.#una)
      // A READ asks for at most a window of responses per request: a large READ is requested in
      // window-sized pieces with fixed boundaries, each a READ request of its own at its first PSN.
      // A retry asks for the rest of its piece only, so every later request keeps its original PSN
      // (a request reaching past the responder's expected PSN would be neither new nor a duplicate).
      // A later piece waits until every response of the earlier ones has arrived: each piece is a
      // READ request the responder counts against its max_dest_rd_atomic, and the WR holds one
      // slot of this side's max_rd_atomic, so the WR must never have two requests outstanding.
      if (w.kind === WqeKind.READ && w.received < this.#txPkt) return 0
      const chunk = w.kind === WqeKind.READ ? Math.min(w.packets, (Math.floor(this.#txPkt / W) + 1) * W) - this.#txPkt : 1
      if (inFlight > 0 && (inFlight - this.#sacked + chunk > this.window || inFlight + chunk > W)) return 0
      if (w.firstPsn < 0) {
        w.firstPsn = psn
        w.lastPsn = psnAdd(psn, w.packets - 1)
        this.#freshPsn = psnAdd(psn, w.packets)
      }
      if (!w.started) {
        w.started = true
        if (w.isReadOrAtomic) this.#rdAtomicInFlight++
      }
      const run = chunk === 1 && this.#host.emitRun !== undefined ? this.#emitRun(w, psn, inFlight) : 0
      const bytes = run > 0 ? run : this.#emitPacket(w, psn, chunk)
      // The ACK timeout runs from the latest transmission: a paced (rate-limited) sender is not
      // mistaken for a lost one; losses in a stream are caught by the responder's sequence NAK.
      this.#restartTimers()
      return bytes
    }
    return 0
  }

  /** The oldest PSN still outstanding: unacknowledged, or a READ response not received yet. */
  #windowBase(): number {
    const head = this.#wqes[this.#head]
    if (head !== undefined && head.kind === WqeKind.READ && head.firstPsn >= 0) return psnAdd(head.firstPsn, head.received)
    return this.#una
  }

  #emitPacket(w: SendWqe, psn: number, chunk: number): number {
    const k = this.#txPkt
    const periodic = this.#sinceAckReq + 1 >= ACK_REQ_EVERY || psnDiff(psn, this.#una) * 2 >= this.window
    this.#sent?.record(psn, performance.now())
    this.#sr?.sent(psn)
    const len = fillRequestPacket(w, k, psn, this.#pmtu, chunk, periodic, this.#host.lazyAcks, this.#pkt, this.#parts)
    const end = psnAdd(psn, chunk)
    if (psnLess(this.#sentEnd, end)) this.#sentEnd = end
    else this.#host.counters.retransmittedBytes += len
    this.#sinceAckReq = this.#pkt.bth.ackReq ? 0 : this.#sinceAckReq + 1
    this.#txPkt += chunk
    if (w.kind === WqeKind.ATOMIC || this.#txPkt >= w.packets) this.#advanceWqe()
    return this.#host.emit(this.#pkt, this.#parts, len)
  }

  /**
   * Sends the middle packets of a WRITE/SEND from packet #txPkt on as one run (as many as the
   * window allows, at most RUN_PACKETS, their payload in one registered view), with the same
   * headers, AckReq bits and bookkeeping #emitPacket gives them one by one; returns the bytes
   * sent, 0 when there is no run here (fewer than RUN_MIN_PACKETS packets) or the device cannot send it now.
   */
  #emitRun(w: SendWqe, psn: number, inFlight: number): number {
    const k = this.#txPkt
    if ((w.kind !== WqeKind.WRITE && w.kind !== WqeKind.SEND) || k < 1) return 0
    const window = this.window
    // Packet i of the run goes out with inFlight + i in flight: the window check of transmitNext for each.
    const count = Math.min(w.packets - 1 - k, RUN_PACKETS, window - (inFlight - this.#sacked), this.#host.windowPackets - inFlight)
    if (count < RUN_MIN_PACKETS) return 0
    const seg = this.#pmtu
    const parts = this.#parts
    parts.length = 0
    if (gatherViews(w.sgl, k * seg, count * seg, parts) !== 1) return 0
    const payload = parts[0]!
    const flags = this.#runAckReq
    let since = this.#sinceAckReq
    for (let i = 0; i < count; i++) {
      const ask = since + 1 >= ACK_REQ_EVERY || psnDiff(psnAdd(psn, i), this.#una) * 2 >= window
      flags[i] = ask ? 1 : 0
      since = ask ? 0 : since + 1
    }
    fillRequestPacket(w, k, psn, seg, 1, false, this.#host.lazyAcks, this.#pkt, parts)
    const sent = this.#host.emitRun!(this.#pkt, payload, seg, count, flags)
    if (sent <= 0) return 0
    const now = performance.now()
    const c = this.#host.counters
    for (let i = 0; i < sent; i++) {
      const p = psnAdd(psn, i)
      this.#sent?.record(p, now)
      this.#sr?.sent(p)
      const end = psnAdd(p, 1)
      if (psnLess(this.#sentEnd, end)) this.#sentEnd = end
      else c.retransmittedBytes += seg
      this.#sinceAckReq = flags[i] === 1 ? 0 : this.#sinceAckReq + 1
    }
    this.#txPkt += sent
    return sent * (seg + HeaderSize.BTH + HeaderSize.ICRC)
  }

  #advanceWqe(): void {
    this.#transmitFrom(this.#txIdx + 1)
  }

  #transmitFrom(idx: number): void {
    this.#txIdx = idx
    // A READ whose first responses already arrived is asked only for the rest.
    const next = this.#wqes[idx]
    this.#txPkt = next !== undefined && next.kind === WqeKind.READ ? next.received : 0
  }

  // ---- responses

  /**
   * Handles an ACKNOWLEDGE, READ response or ATOMIC ACKNOWLEDGE; returns why it was dropped, or
   * null: `ghostAck` for a PSN not transmitted yet, `badPsn` for a stale or unmatched one.
   */
  receive(pkt: RocePacket): DropReason | null {
    if (this.#stopped) return 'badPsn'
    const op = pkt.bth.opcode
    const psn = pkt.bth.psn
    // At or past the first PSN not transmitted (within half the PSN space; further is stale).
    if (psnDiff(psn, this.#sentEnd) >= 0) return 'ghostAck'
    let ok: boolean
    if (op === RcOpcode.ACKNOWLEDGE && pkt.payload.length > 0) return this.#onSack(psn, pkt.aeth!.syndrome, pkt.payload)
    if (op === RcOpcode.ACKNOWLEDGE) ok = this.#onAck(psn, pkt.aeth!.syndrome)
    else if (op === RcOpcode.ATOMIC_ACKNOWLEDGE) ok = this.#onAtomicAck(psn, pkt.atomicAckEth!.origData)
    else ok = this.#onReadResponse(pkt, psn)
    return ok ? null : 'badPsn'
  }

  /** True when `psn` (transmitted) is not yet acknowledged, or the last one acknowledged. */
  #inWindow(psn: number): boolean {
    return psnDiff(psn, this.#una) >= -1
  }

  #onAck(psn: number, syndrome: number): boolean {
    if (!this.#inWindow(psn)) return false
    const kind = syndrome & 0x60
    if (kind === 0x00) {
      if (this.#cc !== null && !this.#repairing) this.#sampleRtt(psn)
      this.#repairing = false
      this.#sacked = 0
      this.#ackThrough(psn)
      return true
    }
    this.#host.counters.nakReceived(syndrome)
    if (kind === 0x20) {
      this.#onRnrNak(psn, syndrome & 0x1f)
      return true
    }
    if (kind !== 0x60) return false
    const code = syndrome & 0x1f
    this.#ackThrough(psnAdd(psn, -1))
    if (this.#stopped) return true
    if (code === NakCode.PSN_SEQUENCE_ERROR) {
      this.#rewind(psn)
      return true
    }
    const w = this.#wqeAt(psn)
    if (w === undefined) return false
    const status = NAK_STATUS[code] ?? WcStatus.BAD_RESP_ERR
    this.#fail(w, status, `NAK ${status} for PSN ${psn} (WR ${w.wrId})`, code)
    return true
  }

  // ---- selective repeat

  /**
   * A SACK NAK at `psn` (the responder's expected PSN): everything before it arrived, `ext`
   * names what arrived past it. The missing PSNs whose latest transmission is older than a packet
   * known to have arrived are queued to be sent again. Dropped without effect: a SACK from a
   * peer that did not negotiate selective repeat or one that is not well formed (`malformed`), a
   * stale one (`badPsn`) and one naming a PSN not transmitted (`badSack`).
   */
  #onSack(psn: number, syndrome: number, ext: Uint8Array): DropReason | null {
    const sr = this.#sr
    if (sr === null || syndrome !== SEQ_NAK) return 'malformed'
    const block = parseSack(ext)
    if (block === null) return 'malformed'
    if (psnDiff(psn, this.#una) < 0) return 'badPsn'
    if (block.highest >= 0 && psnDiff(sackPsn(psn, block.highest), this.#sentEnd) >= 0) return 'badSack'
    const c = this.#host.counters
    c.nakReceived(syndrome)
    c.sackNaksReceived++
    this.#repairing = true
    let sacked = 0
    for (const word of block.words) sacked += popcount(word)
    this.#sacked = sacked
    // The newest transmission known to have arrived: the newly acknowledged PSNs and the set bits.
    let delivered = -1
    for (let p = this.#una; psnLess(p, psn); p = psnAdd(p, 1)) delivered = Math.max(delivered, sr.sentOrder(p))
    for (let off = 0; off <= block.highest; off++) if (sackHas(block, off)) delivered = Math.max(delivered, sr.sentOrder(sackPsn(psn, off)))
    this.#ackThrough(psnAdd(psn, -1))
    if (this.#stopped || this.#rnrTimer !== null) return null
    for (let off = -1; off < block.highest; off++) {
      if (off >= 0 && sackHas(block, off)) continue
      const m = off < 0 ? psn : sackPsn(psn, off)
      const order = sr.sentOrder(m)
      if (order >= 0 && order > delivered) continue
      const w = this.#wqeAt(m)
      if (w === undefined) continue
      if (w.kind === WqeKind.READ) {
        // The READ request (or the request of its current piece) is missing: ask again for the
        // responses from the first one not received, once per gap (the SACKs that follow name
        // its PSNs until the request arrives).
        const from = psnAdd(w.firstPsn, w.received)
        if (w.rewoundAt !== from) {
          w.rewoundAt = from
          sr.enqueue(from)
        }
        continue
      }
      if (w.isReadOrAtomic) {
        // An atomic request is missing: go back to it as before, once per gap.
        if (w.rewoundAt !== m) {
          w.rewoundAt = m
          this.#rewind(m)
        }
        break
      }
      sr.enqueue(m)
    }
    if (sr.pending > 0) this.#host.wake()
    return null
  }

  /** Sends the next PSN a SACK named missing (still unacknowledged and before the next new packet); its bytes, or 0. */
  #retransmitNext(sr: SelectiveRetransmit): number {
    if (!this.#host.requesterMayContinue()) return 0
    const cur = this.#currentTxPsn()
    for (let m = sr.next(); m >= 0; m = sr.next()) {
      if (psnLess(m, this.#una) || !psnLess(m, cur)) continue
      const w = this.#wqeAt(m)
      if (w === undefined || w.kind === WqeKind.ATOMIC || w.done) continue
      let chunk = 1
      let k = psnDiff(m, w.firstPsn)
      if (w.kind === WqeKind.READ) {
        // A READ is asked again from its first response not received to the end of that piece
        // (window-sized pieces with fixed boundaries, as transmitNext asks for them).
        if (k !== w.received) continue
        const W = this.#host.windowPackets
        chunk = Math.min(w.packets, (Math.floor(k / W) + 1) * W) - k
        // Only up to the first response held past the gap.
        const held = w.held
        if (held !== null) for (let i = 1; i < chunk; i++) if (held[(k + i) % held.length] === k + i) {
          chunk = i
          break
        }
        k = w.received
      }
      const len = fillRequestPacket(w, k, m, this.#pmtu, chunk, true, this.#host.lazyAcks, this.#pkt, this.#parts)
      this.#sinceAckReq = 0
      sr.sent(m)
      const c = this.#host.counters
      c.retransmits++
      c.retransmittedBytes += len
      this.#host.qpCounters.retransmits++
      // A probe does not push the ACK timeout back: a peer that answers nothing still runs out of retries.
      if (this.#probesQueued > 0) {
        this.#probesQueued--
        this.#probeTimer?.restart()
      } else this.#restartTimers()
      return this.#host.emit(this.#pkt, this.#parts, len)
    }
    return 0
  }

  /**
   * Selective repeat's answer to an ACK timeout: probe with the oldest unacknowledged PSN and the
   * newest one sent, so the responder's SACK names every gap between (a lost tail is found
   * without sending the window again). Returns the PSNs queued: 0 when the head is a READ or
   * atomic (go-back-N then).
   */
  #probe(sr: SelectiveRetransmit): number {
    const head = this.#wqes[this.#head]
    if (head === undefined || head.isReadOrAtomic) return 0
    let n = sr.enqueue(this.#una) ? 1 : 0
    const last = psnAdd(this.#currentTxPsn(), -1)
    const w = this.#wqeAt(last)
    if (psnLess(this.#una, last) && w !== undefined && !w.isReadOrAtomic && sr.enqueue(last)) n++
    this.#host.wake()
    return n
  }

  /** A round-trip sample for the congestion window from an ACK of `psn` (sent by us, newly acknowledged). */
  #sampleRtt(psn: number): void {
    if (psnDiff(psn, this.#una) < 0) return
    const at = this.#sent!.sentAt(psn)
    if (at < 0) return
    const t = performance.now()
    this.#cc!.onSample(t - at, t, this.#host.latencyTrafficAt)
  }

  #onRnrNak(psn: number, timer: number): void {
    this.#ackThrough(psnAdd(psn, -1))
    if (this.#stopped) return
    const w = this.#wqeAt(psn)
    if (w === undefined) return
    if (this.#rnrRetry !== RNR_RETRY_INFINITE) {
      if (this.#rnrLeft === 0) {
        this.#fail(w, WcStatus.RNR_RETRY_EXC_ERR, `RNR retries exhausted for WR ${w.wrId}`)
        return
      }
      this.#rnrLeft--
    }
    // Stop sending until the RNR timer expires, then go back to the refused PSN.
    this.#stopTimers()
    if (this.#rnrTimer !== null) clearTimeout(this.#rnrTimer)
    this.#rewindTo(psn)
    this.#rnrTimer = setTimeout(() => {
      this.#rnrTimer = null
      if (this.#stopped) return
      this.#rewind(psn)
    }, rnrDelayMs(timer, this.#host.timers.rnrDelayMaxMs))
  }

  #onAtomicAck(psn: number, orig: bigint): boolean {
    const w = this.#firstPendingResponse()
    if (w === undefined || w.kind !== WqeKind.ATOMIC || w.firstPsn !== psn) return false
    const b = Buffer.allocUnsafe(8)
    b.writeBigUInt64LE(orig)
    scatter(w.sgl, 0, b)
    w.done = true
    this.#ackThrough(psn)
    return true
  }

  #onReadResponse(pkt: RocePacket, psn: number): boolean {
    const w = this.#firstPendingResponse()
    if (w === undefined || w.kind !== WqeKind.READ) return false
    const expected = psnAdd(w.firstPsn, w.received)
    const d = psnDiff(psn, expected)
    if (d !== 0) {
      if (d <= 0 || !psnLessOrEqual(psn, w.lastPsn)) return false
      // A gap: responses were lost. With selective repeat this one is placed now (it is our own
      // memory, undefined until the WR completes); ask again for the missing ones only (once per gap).
      const held = this.#sr !== null && this.#holdReadResponse(w, pkt, w.received + d)
      if (w.rewoundAt !== expected) {
        w.rewoundAt = expected
        this.#retryRead(expected)
      }
      return held
    }
    const idx = w.received
    if (!this.#readResponseFits(w, pkt, idx)) {
      this.#fail(w, WcStatus.BAD_RESP_ERR, `malformed READ response at PSN ${psn}`)
      return true
    }
    const want = pkt.payload.length
    if (want > 0) scatter(w.sgl, idx * this.#pmtu, pkt.payload)
    w.received++
    // Responses placed past the gap this one filled follow it.
    const held = w.held
    if (held !== null) {
      while (w.received < w.packets && held[w.received % held.length] === w.received) {
        held[w.received % held.length] = -1
        w.received++
      }
    }
    if (pkt.aeth !== undefined) this.#ackThrough(psnAdd(w.firstPsn, -1))
    if (w.received === w.packets) {
      w.done = true
      this.#ackThrough(w.lastPsn)
      return true
    }
    this.#progress()
    // Still responses held past another gap: that one is missing too.
    if (held !== null && w.received !== idx + 1 && held.some((k) => k > w.received)) {
      const from = psnAdd(w.firstPsn, w.received)
      if (w.rewoundAt !== from) {
        w.rewoundAt = from
        this.#retryRead(from)
      }
    }
    return true
  }

  /**
   * Responses are placed by PSN. A piece requested separately (window-sized pieces, retries)
   * starts with FIRST and ends with LAST in the middle of the WR; the WR's last must be final.
   */
  #readResponseFits(w: SendWqe, pkt: RocePacket, idx: number): boolean {
    const lastPkt = idx === w.packets - 1
    const op = pkt.bth.opcode
    const finalOp = op === RcOpcode.RDMA_READ_RESPONSE_LAST || op === RcOpcode.RDMA_READ_RESPONSE_ONLY
    const want = lastPkt ? w.length - idx * this.#pmtu : this.#pmtu
    return !(lastPkt && !finalOp) && pkt.payload.length === want
  }

  /**
   * Selective repeat: places READ response `idx` that arrived past a gap (within the window of
   * the piece being received); false when it is not placed (beyond the window, already held, or
   * not the size it must be: it is asked for again and checked in order then).
   */
  #holdReadResponse(w: SendWqe, pkt: RocePacket, idx: number): boolean {
    const W = this.#host.windowPackets
    if (idx - w.received >= W || !this.#readResponseFits(w, pkt, idx)) return false
    const held = (w.held ??= new Int32Array(W).fill(-1))
    const slot = idx % held.length
    if (held[slot] === idx) return false
    held[slot] = idx
    if (pkt.payload.length > 0) scatter(w.sgl, idx * this.#pmtu, pkt.payload)
    this.#host.counters.outOfOrderBuffered++
    return true
  }

  /** The oldest started READ/atomic whose response is not complete. */
  #firstPendingResponse(): SendWqe | undefined {
    const wqes = this.#wqes
    for (let i = this.#head; i < wqes.length; i++) {
      const w = wqes[i]!
      if (!w.started) return undefined
      if (w.isReadOrAtomic && !w.done) return w
    }
    return undefined
  }

  /** The WQE whose PSN range holds `psn`. */
  #wqeAt(psn: number): SendWqe | undefined {
    const wqes = this.#wqes
    for (let i = this.#head; i < wqes.length; i++) {
      const w = wqes[i]!
      if (w.firstPsn < 0) return undefined
      if (psnLessOrEqual(w.firstPsn, psn) && psnLessOrEqual(psn, w.lastPsn)) return w
    }
    return undefined
  }

  /** Completes WQEs acknowledged through PSN `p`. */
  #ackThrough(p: number): void {
    const wqes = this.#wqes
    let progressed = false
    while (this.#head < wqes.length) {
      const w = wqes[this.#head]!
      if (w.firstPsn < 0) break
      if (w.isReadOrAtomic) {
        if (!w.done) {
          // An ACK at or beyond an unfinished READ/atomic: its responses were lost.
          if (psnLessOrEqual(w.firstPsn, p) && w.kind === WqeKind.READ) {
            const from = psnAdd(w.firstPsn, w.received)
            if (w.rewoundAt !== from) {
              w.rewoundAt = from
              this.#retryRead(from)
            }
          }
          break
        }
      } else if (psnLess(p, w.lastPsn)) {
        const next = psnAdd(p, 1)
        if (psnLess(this.#una, next) && psnLessOrEqual(w.firstPsn, p)) {
          this.#una = next
          progressed = true
        }
        break
      }
      wqes[this.#head++] = undefined
      // An ACK past a go-back-N rewind point retired WQEs not yet re-sent: go on after them.
      if (this.#txIdx < this.#head) this.#transmitFrom(this.#head)
      if (w.isReadOrAtomic) this.#rdAtomicInFlight--
      this.#una = psnAdd(w.lastPsn, 1)
      progressed = true
      if (w.signaled) this.#host.completeSend({ wrId: w.wrId, status: WcStatus.SUCCESS, opcode: w.opcode, byteLen: w.length, qpn: this.#host.qpn })
    }
    if (this.#head > 1024 && this.#head * 2 > wqes.length) {
      wqes.splice(0, this.#head)
      this.#txIdx -= this.#head
      this.#head = 0
    }
    if (progressed) this.#progress()
  }

  #progress(): void {
    this.#retryLeft = this.#retryCnt
    this.#rnrLeft = this.#rnrRetry
    if (this.#head >= this.#wqes.length || this.#wqes[this.#head]!.firstPsn < 0) {
      // Nothing in flight.
      this.#stopTimers()
    } else this.#restartTimers()
    this.#host.wake()
  }

  // ---- retransmission

  #timerFired(): void {
    if (this.#stopped) return
    if (this.#head >= this.#wqes.length || this.#wqes[this.#head]!.firstPsn < 0) return
    this.#host.counters.timeouts++
    this.#host.qpCounters.timeouts++
    const w = this.#wqes[this.#head]!
    if (this.#retryLeft === 0) {
      this.#fail(w, WcStatus.RETRY_EXC_ERR, `transport retries exhausted for WR ${w.wrId} (no ACK within ${this.#timer.timeoutMs.toFixed(1)} ms, ${this.#retryCnt} retries)`)
      return
    }
    this.#retryLeft--
    w.rewoundAt = -1
    if (this.#sr === null || this.#probe(this.#sr) === 0) this.#rewind(this.#una)
    this.#restartTimers()
  }

  /**
   * Selective repeat's probe timeout: nothing was sent or acknowledged for a fraction of the ACK
   * timeout while packets are outstanding (a lost tail, a lost last ACK): probe at once instead
   * of waiting for the ACK timeout. Probes use no retry.
   */
  #probeFired(): void {
    if (this.#stopped || this.#rnrTimer !== null || this.#sr === null || this.#sr.pending > 0) return
    if (this.#head >= this.#wqes.length || this.#wqes[this.#head]!.firstPsn < 0) return
    const n = this.#probe(this.#sr)
    this.#probesQueued += n
    if (n > 0) this.#host.counters.tailProbes++
  }

  #restartTimers(): void {
    this.#timer.restart()
    this.#probeTimer?.restart()
  }

  #stopTimers(): void {
    this.#timer.stop()
    this.#probeTimer?.stop()
  }

  /**
   * READ responses from `from` on are missing: with selective repeat only the READ request for
   * them goes again (the packets after it are not sent twice); otherwise go-back-N to it.
   */
  #retryRead(from: number): void {
    if (this.#sr === null) {
      this.#rewind(from)
      return
    }
    if (this.#sr.enqueue(from)) this.#host.wake()
  }

  /** Go-back-N: the next packet sent is `psn` and everything after it again. */
  #rewind(psn: number): void {
    if (this.#rewindTo(psn)) this.#host.wake()
  }

  #rewindTo(psn: number): boolean {
    this.#sr?.clear()
    this.#probesQueued = 0
    this.#sacked = 0
    const wqes = this.#wqes
    for (let i = this.#head; i < wqes.length; i++) {
      const w = wqes[i]!
      if (w.firstPsn < 0) break
      if (psnLessOrEqual(psn, w.lastPsn)) {
        const k = Math.max(0, psnDiff(psn, w.firstPsn))
        const was = psnDiff(this.#currentTxPsn(), psn)
        if (was > 0) {
          this.#host.counters.retransmits += was
          this.#host.qpCounters.retransmits += was
        }
        this.#txIdx = i
        this.#txPkt = w.kind === WqeKind.READ ? w.received : w.kind === WqeKind.ATOMIC ? 0 : k
        return true
      }
    }
    return false
  }

  /** The PSN the next transmitted packet would carry. */
  #currentTxPsn(): number {
    const w = this.#wqes[this.#txIdx]
    if (w === undefined || w.firstPsn < 0) return this.#freshPsn
    return psnAdd(w.firstPsn, this.#txPkt)
  }

  /** Completes `w` with an error status and hands the QP to ERR. */
  #fail(w: SendWqe, status: WcStatus, reason: string, vendorErr?: number): void {
    if (this.#stopped) return
    const idx = this.#wqes.indexOf(w, this.#head)
    // Earlier WQEs (implicitly acknowledged by the failure point) complete first.
    for (let i = this.#head; i < idx; i++) {
      const e = this.#wqes[i]!
      if (e.signaled) this.#host.completeSend({ wrId: e.wrId, status: WcStatus.SUCCESS, opcode: e.opcode, byteLen: e.length, qpn: this.#host.qpn })
    }
    this.#head = idx + 1
    this.#host.completeSend({ wrId: w.wrId, status, opcode: w.opcode, byteLen: 0, qpn: this.#host.qpn, ...(vendorErr === undefined ? {} : { vendorErr }) })
    this.stop()
    this.#host.requesterFailed(reason)
  }
}
