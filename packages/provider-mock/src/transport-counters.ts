/** Transport counters of a mock device or QP (packets, retransmits, NAKs by kind, drops by reason), read through the SPI's metrics() hook. */
import type { ProviderMetrics } from '@rdma-session/provider-interface'
import type { DropReason } from './fabric-stats.js'
import { NAK_CODES, type NakSyndrome, type Packet } from './packet.js'

const NAK_KINDS = Object.keys(NAK_CODES) as NakSyndrome[]

/** Drops a host decides on when a packet reaches it (the fabric's own drops are in fabric.stats). */
export const RECEIVE_DROP_REASONS: readonly DropReason[] = ['unknown-qpn', 'qp-not-ready', 'unexpected-source', 'decrypt-failure', 'unknown-epoch', 'encryption-mismatch', 'ghost-ack', 'unmatched-duplicate']

function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  const o = {} as Record<K, number>
  for (const k of keys) o[k] = 0
  return o
}

export class TransportCounters {
  packetsSent = 0
  bytesSent = 0
  packetsReceived = 0
  bytesReceived = 0
  /** Request messages sent again (go-back-N after a timeout, a sequence NAK, an RNR wait or a lost READ response). */
  retransmits = 0
  /** Retransmit timer expiries. */
  timeouts = 0
  readonly naksSent = zeros(NAK_KINDS)
  readonly naksReceived = zeros(NAK_KINDS)
  readonly drops = zeros(RECEIVE_DROP_REASONS)

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
    if (reason in this.drops) this.drops[reason]++
  }

  metrics(): ProviderMetrics {
    return {
      counters: {
        packetsSent: this.packetsSent,
        bytesSent: this.bytesSent,
        packetsReceived: this.packetsReceived,
        bytesReceived: this.bytesReceived,
        retransmits: this.retransmits,
        timeouts: this.timeouts,
      },
      labeled: {
        naksSent: { label: 'kind', values: { ...this.naksSent } },
        naksReceived: { label: 'kind', values: { ...this.naksReceived } },
        drops: { label: 'reason', values: { ...this.drops } },
      },
    }
  }
}
