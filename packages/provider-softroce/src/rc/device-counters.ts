/** Packet and drop counters of one softroce device: every dropped packet is counted under exactly one reason. */
import { ENDPOINT_DROP_REASONS, labeledCounters, nakKind, TransportCounters, type LabeledCounter, type TransportCounterValues, zeroCounts, zeroNaks, type DropReason as EngineDropReason } from '@rdma-session/rc-engine'

/** The drop reasons a softroce device counts (names from the shared vocabulary in @rdma-session/rc-engine). */
export const DROP_REASONS = [...ENDPOINT_DROP_REASONS, 'badIcrc', 'malformed', 'badPsn', 'replay', 'accessViolation', 'badSack'] as const satisfies readonly EngineDropReason[]

/** Why a received packet was dropped. */
export type DropReason = (typeof DROP_REASONS)[number]

export type DropCounts = Record<DropReason, number>

/**
 * A plain copy of a device's counters: the engine's (packets and bytes in and out, `retransmits`
 * in request wire packets, `timeouts`; see TransportCounters in @rdma-session/rc-engine) and softroce's own.
 */
export interface DeviceCountersSnapshot extends TransportCounterValues {
  /** Payload bytes of request packets sent again. */
  readonly retransmittedBytes: number
  /** Selective repeat: SACK NAKs sent (responder) and received (requester; also counted as sequence NAKs). */
  readonly sackNaksSent: number
  readonly sackNaksReceived: number
  /** Selective repeat: request packets held past a gap, and ones dropped because they were beyond the reorder window. */
  readonly outOfOrderBuffered: number
  readonly reorderOverflows: number
  /** Selective repeat: probes sent after a fraction of the ACK timeout without progress (a lost tail or last ACK). */
  readonly tailProbes: number
  readonly acksSent: number
  readonly naksSent: number
  readonly rnrNaksSent: number
  readonly rnrNaksReceived: number
  readonly seqNaksReceived: number
  /** Duplicate requests the responder answered without executing them again. */
  readonly duplicatesAnswered: number
  /** IPv4 packets whose ICRC matched only with an IP ID other than 0 (found by solving for the ID). */
  readonly ipv4IdSolved: number
  /** Socket send errors (the packet is lost; RC recovers it). */
  readonly sendErrors: number
  /** Socket receive errors the native receive path reported (errno other than EAGAIN). */
  readonly receiveErrors: number
  /**
   * Datagrams the native send path could not hand to the kernel at once (its queue was full):
   * with the native receive path they wait in order for the socket to be writable; otherwise
   * node:dgram queues them.
   */
  readonly nativeSendFallbacks: number
  readonly drops: Readonly<DropCounts>
}

/** A device's counters: the engine's TransportCounters plus softroce's own (selective repeat, socket, NAKs by kind, drops). */
export class DeviceCounters extends TransportCounters {
  retransmittedBytes = 0
  sackNaksSent = 0
  sackNaksReceived = 0
  outOfOrderBuffered = 0
  reorderOverflows = 0
  tailProbes = 0
  acksSent = 0
  naksSent = 0
  rnrNaksSent = 0
  rnrNaksReceived = 0
  seqNaksReceived = 0
  duplicatesAnswered = 0
  ipv4IdSolved = 0
  sendErrors = 0
  receiveErrors = 0
  nativeSendFallbacks = 0
  readonly naksSentByKind = zeroNaks()
  readonly naksReceivedByKind = zeroNaks()
  readonly drops: DropCounts = zeroCounts(DROP_REASONS)

  drop(reason: DropReason): void {
    this.drops[reason]++
  }

  /** Counts a NAK or RNR NAK sent with `syndrome`. */
  nakSent(syndrome: number): void {
    const kind = nakKind(syndrome)
    if (kind === null) return
    this.naksSent++
    if (kind === 'RNR') this.rnrNaksSent++
    this.naksSentByKind[kind]++
  }

  /** Counts a NAK or RNR NAK received with `syndrome`. */
  nakReceived(syndrome: number): void {
    const kind = nakKind(syndrome)
    if (kind === null) return
    if (kind === 'RNR') this.rnrNaksReceived++
    if (kind === 'PSN_SEQUENCE_ERROR') this.seqNaksReceived++
    this.naksReceivedByKind[kind]++
  }

  /** The counters in core's ProviderMetrics shape (a fresh object per call). */
  metrics(): { counters: Record<string, number>; labeled: Record<string, LabeledCounter> } {
    const { drops, ...counters } = this.snapshot()
    return { counters, labeled: labeledCounters(this.naksSentByKind, this.naksReceivedByKind, drops) }
  }

  get totalDrops(): number {
    let n = 0
    for (const r of DROP_REASONS) n += this.drops[r]
    return n
  }

  snapshot(): DeviceCountersSnapshot {
    return {
      ...this.counters(),
      retransmittedBytes: this.retransmittedBytes,
      sackNaksSent: this.sackNaksSent,
      sackNaksReceived: this.sackNaksReceived,
      outOfOrderBuffered: this.outOfOrderBuffered,
      reorderOverflows: this.reorderOverflows,
      tailProbes: this.tailProbes,
      acksSent: this.acksSent,
      naksSent: this.naksSent,
      rnrNaksSent: this.rnrNaksSent,
      rnrNaksReceived: this.rnrNaksReceived,
      seqNaksReceived: this.seqNaksReceived,
      duplicatesAnswered: this.duplicatesAnswered,
      ipv4IdSolved: this.ipv4IdSolved,
      sendErrors: this.sendErrors,
      receiveErrors: this.receiveErrors,
      nativeSendFallbacks: this.nativeSendFallbacks,
      drops: { ...this.drops },
    }
  }
}
