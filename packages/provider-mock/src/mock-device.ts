/**
 * A mock device is one host on the fabric: its address and port, its QPs (by
 * QPN), its registered memory, and its egress scheduler.
 */
import { ClosedError, QpStateError, type DeviceInfo, type ProviderDevice, type ProviderMetrics } from '@rdma-session/provider-interface'
import { EgressScheduler } from './egress-scheduler.js'
import type { DropReason } from './fabric-stats.js'
import type { MockFabric } from './fabric.js'
import { hostKey } from './host-key.js'
import { MemoryTable } from './memory-region.js'
import { MockPd } from './mock-pd.js'
import type { MockQp } from './mock-qp.js'
import type { Packet } from './packet.js'
import { MockTransportCounters } from './transport-counters.js'
import { randomQpn } from '@rdma-session/rc-engine'

/** The GID of an address: IPv4-mapped IPv6 for IPv4, the address itself for IPv6. */
function gidOf(address: string): string {
  return address.includes(':') ? address : `::ffff:${address}`
}

export class MockDevice implements ProviderDevice {
  readonly info: DeviceInfo
  /** `address:port`, the host's name on the fabric. */
  readonly key: string
  readonly memory = new MemoryTable()
  /** Packets, retransmits, NAKs by kind and drops by reason of this host. */
  readonly counters = new MockTransportCounters()
  readonly scheduler: EgressScheduler
  /** Set by fabric.killHost(): the host neither sends nor receives. */
  killed = false
  readonly #qps = new Map<number, MockQp>()
  readonly #pds = new Set<MockPd>()
  #closed = false

  constructor(
    readonly fabric: MockFabric,
    address: string,
    port: number,
    name: string,
  ) {
    this.info = Object.freeze({ name, address, port, gid: gidOf(address) })
    this.key = hostKey(address, port)
    this.scheduler = new EgressScheduler(fabric.linkBytesPerSecond, fabric.refTimers)
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Live QPs on this host. */
  get qpCount(): number {
    return this.#qps.size
  }

  /** The live QP with this number, for inspection. */
  qp(qpn: number): MockQp | undefined {
    return this.#qps.get(qpn)
  }

  allocPd(): MockPd {
    if (this.#closed) throw new ClosedError(`device ${this.info.name}`)
    const pd = new MockPd(this)
    this.#pds.add(pd)
    return pd
  }

  async close(): Promise<void> {
    if (this.#closed) return
    if (this.#pds.size > 0) {
      throw new QpStateError(`device ${this.info.name} still has ${this.#pds.size} PD(s); destroy QPs, CQs and MRs, dealloc the PDs, then close the device`, {
        pds: this.#pds.size,
      })
    }
    this.#closed = true
    this.scheduler.stop()
    this.fabric.detach(this)
  }

  // ---- internal

  allocateQpn(): number {
    let qpn = randomQpn()
    while (this.#qps.has(qpn)) qpn = randomQpn()
    return qpn
  }

  addQp(qp: MockQp): void {
    this.#qps.set(qp.qpn, qp)
  }

  forgetQp(qp: MockQp): void {
    if (this.#qps.get(qp.qpn) === qp) this.#qps.delete(qp.qpn)
  }

  forgetPd(pd: MockPd): void {
    this.#pds.delete(pd)
  }

  transmit(packet: Packet): void {
    this.counters.sent(packet)
    this.fabric.transmit(packet)
  }

  /** A packet arrived for this host; returns why it was dropped, or null. */
  deliver(packet: Packet): DropReason | null {
    const qp = this.#qps.get(packet.dstQpn)
    if (qp === undefined) {
      this.counters.dropped('unknownQpn')
      return 'unknownQpn'
    }
    const reason = qp.receive(packet)
    if (reason === null) {
      this.counters.received(packet)
      qp.counters.received(packet)
    } else {
      this.counters.dropped(reason)
      qp.counters.dropped(reason)
    }
    return reason
  }

  /** Transport counters of this host (SPI metrics hook; fabric.stats has the fabric's view). */
  metrics(): ProviderMetrics {
    return this.counters.metrics()
  }
}
