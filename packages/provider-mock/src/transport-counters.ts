/** Transport counters of a mock device or QP: the engine's TransportCounters plus NAKs by kind and drops by reason, read through the SPI's metrics() hook. */
import type { ProviderMetrics } from '@rdma-session/provider-interface'
import { ENDPOINT_DROP_REASONS, labeledCounters, TransportCounters, zeroCounts, zeroNaks } from '@rdma-session/rc-engine'
import type { DropReason } from './fabric-stats.js'
import type { Packet } from './packet.js'

/** Drops a host decides on when a packet reaches it (the fabric's own drops are in fabric.stats). */
export const RECEIVE_DROP_REASONS = [...ENDPOINT_DROP_REASONS, 'unknownEpoch', 'encryptionMismatch'] as const satisfies readonly DropReason[]

type ReceiveDropReason = (typeof RECEIVE_DROP_REASONS)[number]

export class MockTransportCounters extends TransportCounters {
  readonly naksSent = zeroNaks()
  readonly naksReceived = zeroNaks()
  readonly drops = zeroCounts(RECEIVE_DROP_REASONS)

  sent(p: Packet): void {
    this.packetsSent++
    this.bytesSent += p.payload.length
    if (p.syndrome !== null && p.opcode === 'NAK') this.naksSent[p.syndrome]++
  }

  received(p: Packet): void {
    this.packetsReceived++
    this.bytesReceived += p.payload.length
    if (p.syndrome !== null && p.opcode === 'NAK') this.naksReceived[p.syndrome]++
  }

  dropped(reason: DropReason): void {
    if (reason in this.drops) this.drops[reason as ReceiveDropReason]++
  }

  metrics(): ProviderMetrics {
    return {
      counters: this.counters(),
      labeled: labeledCounters(this.naksSent, this.naksReceived, this.drops),
    }
  }
}
