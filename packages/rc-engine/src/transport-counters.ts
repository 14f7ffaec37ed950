/** The values of TransportCounters (a type alias, not an interface, so it is assignable to Record<string, number>). */
export type TransportCounterValues = {
  readonly packetsSent: number
  readonly bytesSent: number
  readonly packetsReceived: number
  readonly bytesReceived: number
  readonly retransmits: number
  readonly timeouts: number
}

/**
 * The counters every RC engine QP and device keeps, with one meaning in every provider:
 *
 * - `packetsSent`/`packetsReceived`: packets as the provider's wire carries them (softroce:
 *   datagrams; mock: messages, one fabric packet each);
 * - `bytesSent`/`bytesReceived`: payload bytes as carried (ciphertext and tag when encrypted);
 * - `retransmits`: request **wire packets** sent again, i.e. MTU-sized packets (PSNs sent a
 *   second time; a READ or atomic request is one packet), after a local ACK timeout, a
 *   sequence NAK, an RNR NAK, a SACK NAK or a lost READ response. A 10 KiB WRITE at MTU
 *   1024 resent once counts 10 in both providers;
 * - `timeouts`: local ACK timer expiries.
 */
export class TransportCounters {
  packetsSent = 0
  bytesSent = 0
  packetsReceived = 0
  bytesReceived = 0
  retransmits = 0
  timeouts = 0

  /** The counters above as core's ProviderMetrics `counters` (a fresh object per call). */
  counters(): TransportCounterValues {
    return {
      packetsSent: this.packetsSent,
      bytesSent: this.bytesSent,
      packetsReceived: this.packetsReceived,
      bytesReceived: this.bytesReceived,
      retransmits: this.retransmits,
      timeouts: this.timeouts,
    }
  }
}

/** A labeled counter family as core's ProviderMetrics carries it. */
export interface LabeledCounter {
  readonly label: string
  readonly values: Record<string, number>
}

/** NAKs sent and received by `kind` and drops by `reason`, as ProviderMetrics `labeled` (copies, so later counts do not change them). */
export function labeledCounters(naksSent: Record<string, number>, naksReceived: Record<string, number>, drops: Record<string, number>): Record<string, LabeledCounter> {
  return {
    naksSent: { label: 'kind', values: { ...naksSent } },
    naksReceived: { label: 'kind', values: { ...naksReceived } },
    drops: { label: 'reason', values: { ...drops } },
  }
}
