/** Packet and drop counters of one softroce device: every dropped packet is counted under exactly one reason. */

/** Why a received packet was dropped. */
export type DropReason =
  | 'badIcrc'
  | 'malformed'
  | 'unknownQpn'
  | 'wrongState'
  | 'badPsn'
  | 'decryptFailure'
  | 'replay'
  | 'accessViolation'
  /** From an address (or fixed source port) other than the QP's remote's (off-path injection). */
  | 'wrongSource'
  /** An ACK, NAK, READ response or atomic ACK for a PSN the requester has not transmitted (forged or corrupt). */
  | 'ghostAck'
  /** A duplicate READ or atomic request that matches none of the responder's saved requests. */
  | 'unmatchedDuplicate'
  /** A SACK NAK (selective repeat) whose bitmap names a PSN the requester has not transmitted (forged or corrupt). */
  | 'badSack'

export const DROP_REASONS: readonly DropReason[] = ['badIcrc', 'malformed', 'unknownQpn', 'wrongState', 'badPsn', 'decryptFailure', 'replay', 'accessViolation', 'wrongSource', 'ghostAck', 'unmatchedDuplicate', 'badSack']

export type DropCounts = Record<DropReason, number>

/** NAK kinds, named as core's metrics expect (label `kind`). */
export type NakKind = 'PSN_SEQUENCE_ERROR' | 'RNR' | 'INVALID_REQUEST' | 'REMOTE_ACCESS_ERROR' | 'REMOTE_OPERATIONAL_ERROR' | 'OTHER'

const NAK_CODES: readonly NakKind[] = ['PSN_SEQUENCE_ERROR', 'INVALID_REQUEST', 'REMOTE_ACCESS_ERROR', 'REMOTE_OPERATIONAL_ERROR']

/** The NAK kind of an AETH syndrome (RNR NAK or NAK), or null for an ACK. */
export function nakKind(syndrome: number): NakKind | null {
  const kind = syndrome & 0x60
  if (kind === 0x00) return null
  if (kind === 0x20) return 'RNR'
  return NAK_CODES[syndrome & 0x1f] ?? 'OTHER'
}

const zeroNaks = (): Record<NakKind, number> => ({ PSN_SEQUENCE_ERROR: 0, RNR: 0, INVALID_REQUEST: 0, REMOTE_ACCESS_ERROR: 0, REMOTE_OPERATIONAL_ERROR: 0, OTHER: 0 })

/** The counters of one QP (ProviderQp.metrics). */
export class QpCounters {
  packetsSent = 0
  bytesSent = 0
  packetsReceived = 0
  bytesReceived = 0
  retransmits = 0
  timeouts = 0

  metrics(): { counters: Record<string, number> } {
    return { counters: { packetsSent: this.packetsSent, bytesSent: this.bytesSent, packetsReceived: this.packetsReceived, bytesReceived: this.bytesReceived, retransmits: this.retransmits, timeouts: this.timeouts } }
  }
}

/** A plain copy of a device's counters. */
export interface DeviceCountersSnapshot {
  readonly packetsSent: number
  readonly bytesSent: number
  readonly packetsReceived: number
  readonly bytesReceived: number
  /** Request packets sent again (timeout, sequence NAK, RNR NAK, SACK NAK). */
  readonly retransmits: number
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
  /** Local ACK timer expiries. */
  readonly timeouts: number
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

export class DeviceCounters {
  packetsSent = 0
  bytesSent = 0
  packetsReceived = 0
  bytesReceived = 0
  retransmits = 0
  retransmittedBytes = 0
  sackNaksSent = 0
  sackNaksReceived = 0
  outOfOrderBuffered = 0
  reorderOverflows = 0
  tailProbes = 0
  timeouts = 0
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
  readonly drops: DropCounts = { badIcrc: 0, malformed: 0, unknownQpn: 0, wrongState: 0, badPsn: 0, decryptFailure: 0, replay: 0, accessViolation: 0, wrongSource: 0, ghostAck: 0, unmatchedDuplicate: 0, badSack: 0 }

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
  metrics(): { counters: Record<string, number>; labeled: Record<string, { label: string; values: Record<string, number> }> } {
    const s = this.snapshot()
    const { drops, ...plain } = s
    return {
      counters: { ...plain },
      labeled: {
        drops: { label: 'reason', values: { ...drops } },
        naksSent: { label: 'kind', values: { ...this.naksSentByKind } },
        naksReceived: { label: 'kind', values: { ...this.naksReceivedByKind } },
      },
    }
  }

  get totalDrops(): number {
    let n = 0
    for (const r of DROP_REASONS) n += this.drops[r]
    return n
  }

  snapshot(): DeviceCountersSnapshot {
    return {
      packetsSent: this.packetsSent,
      bytesSent: this.bytesSent,
      packetsReceived: this.packetsReceived,
      bytesReceived: this.bytesReceived,
      retransmits: this.retransmits,
      retransmittedBytes: this.retransmittedBytes,
      sackNaksSent: this.sackNaksSent,
      sackNaksReceived: this.sackNaksReceived,
      outOfOrderBuffered: this.outOfOrderBuffered,
      reorderOverflows: this.reorderOverflows,
      tailProbes: this.tailProbes,
      timeouts: this.timeouts,
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
