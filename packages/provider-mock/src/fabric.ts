/**
 * The in-memory fabric: a registry of hosts (one per opened device) by
 * `address:port`, and the wire between them. Packets are delivered in FIFO
 * order from a later macrotask, after fault injection; the fabric records them
 * on request and counts what it delivered and dropped (and why).
 */
import { randomInt } from 'node:crypto'
import { InvalidArgumentError } from '@rdma-session/provider-interface'
import { emptyStats, recordedPacket, type FabricStats, type FaultKind, type RecordedPacket } from './fabric-stats.js'
import { FaultInjector } from './fault-injector.js'
import { hostAddress, hostKey } from './host-key.js'
import { MockDevice } from './mock-device.js'
import type { Packet } from './packet.js'
import { performance } from 'node:perf_hooks'

export interface MockFabricOptions {
  /** Egress link rate of every host, bytes per second (headers included). Default: unlimited. */
  readonly linkBytesPerSecond?: number
  /** Cap on the retransmit timeout derived from a QP's `timeout` attribute, in ms. Default 50. */
  readonly maxAckTimeoutMs?: number
  /** Cap on the RNR NAK wait derived from the responder's `minRnrTimer`, in ms. Default 5. */
  readonly maxRnrDelayMs?: number
  /** How long a QP still accepts packets under its previous key after a rekey, in ms. Default 1000. */
  readonly rekeyGraceMs?: number
  /** Seed for probabilistic fault rules. Default: random. */
  readonly seed?: number
  /** Keep the process alive while mock timers (retransmit, RNR, delay, rate limit) are pending. Default false: they are unref()ed. */
  readonly refTimers?: boolean
}

/** Where and as what a device joins the fabric. */
export interface HostOptions {
  readonly address?: string
  readonly port?: number
  readonly deviceName?: string
}

export const DEFAULT_PORT = 4791
/** How long a reordered packet waits for a packet to overtake it before it is delivered anyway. */
const REORDER_HOLD_MS = 2
/** Packets delivered per macrotask before the fabric yields to the event loop. */
const DELIVERY_BATCH = 65536

function positive(name: string, v: number | undefined, fallback: number, allowInfinity = false): number {
  if (v === undefined) return fallback
  if (typeof v !== 'number' || !(v > 0) || (!allowInfinity && !Number.isFinite(v))) throw new InvalidArgumentError(`${name} must be a positive number, got ${String(v)}`)
  return v
}

function drainLater(f: MockFabric): void {
  f.drain()
}

export class MockFabric {
  readonly linkBytesPerSecond: number
  readonly maxAckTimeoutMs: number
  readonly maxRnrDelayMs: number
  readonly rekeyGraceMs: number
  readonly refTimers: boolean
  /** Drop, delay, duplicate and reorder rules. */
  readonly faults: FaultInjector
  /** Counters since creation (or the last resetStats()). */
  stats: FabricStats = emptyStats()
  /** Packets put on the fabric while recording is on (see record()). */
  readonly recorded: RecordedPacket[] = []

  readonly #hosts = new Map<string, MockDevice>()
  readonly #createdAt = performance.now()
  #recording = false
  #listeners: ((packet: RecordedPacket) => void)[] = []
  #nextAddress = 0
  #nextDevice = 0
  #wire: (Packet | undefined)[] = []
  #wireHead = 0
  #drainScheduled = false
  #held: Packet[] = []
  #heldTimer: NodeJS.Timeout | null = null

  constructor(options: MockFabricOptions = {}) {
    this.linkBytesPerSecond = positive('linkBytesPerSecond', options.linkBytesPerSecond, Infinity, true)
    this.maxAckTimeoutMs = positive('maxAckTimeoutMs', options.maxAckTimeoutMs, 50)
    this.maxRnrDelayMs = positive('maxRnrDelayMs', options.maxRnrDelayMs, 5)
    const grace = options.rekeyGraceMs ?? 1000
    if (!(typeof grace === 'number' && grace >= 0)) throw new InvalidArgumentError(`rekeyGraceMs must be a non-negative number, got ${String(grace)}`)
    this.rekeyGraceMs = grace
    this.refTimers = options.refTimers === true
    this.faults = new FaultInjector(options.seed ?? randomInt(0, 2 ** 32))
  }

  // ---- hosts

  /** Adds a host (what mock().openDevice() does). Without an address, one of the form 127.77.x.y is assigned. */
  openDevice(options: HostOptions = {}): MockDevice {
    const port = options.port ?? DEFAULT_PORT
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`port must be an integer from 1 to 65535, got ${String(port)}`)
    if (options.address !== undefined && (typeof options.address !== 'string' || options.address.length === 0)) {
      throw new InvalidArgumentError('address must be a non-empty string')
    }
    const address = options.address ?? this.#freeAddress(port)
    const key = hostKey(address, port)
    const existing = this.#hosts.get(key)
    if (existing !== undefined) {
      throw new InvalidArgumentError(`mock address ${key} is in use by device ${existing.info.name}; close it first, or give each mock() its own address`, { address, port })
    }
    const device = new MockDevice(this, address, port, options.deviceName ?? `mock${this.#nextDevice++}`)
    this.#hosts.set(key, device)
    return device
  }

  /** Open devices (hosts) on this fabric. */
  get devices(): MockDevice[] {
    return [...this.#hosts.values()]
  }

  /** The device at `address:port`, if open. */
  device(address: string, port: number = DEFAULT_PORT): MockDevice | undefined {
    return this.#hosts.get(hostKey(address, port))
  }

  /**
   * Makes hosts silently stop sending and answering (all ports of `address`
   * unless `port` is given). Their peers' WRs time out: RETRY_EXC_ERR, QP to ERR.
   * Returns how many hosts were killed.
   */
  killHost(address: string, port?: number): number {
    return this.#setKilled(address, port, true)
  }

  /** Undoes killHost. QPs that went to ERR meanwhile stay in ERR. */
  reviveHost(address: string, port?: number): number {
    return this.#setKilled(address, port, false)
  }

  /** @internal A device closed. */
  detach(device: MockDevice): void {
    if (this.#hosts.get(device.key) === device) this.#hosts.delete(device.key)
  }

  // ---- inspection

  /** Starts (or with `false`, stops) appending every packet put on the fabric to `recorded`. */
  record(on = true): this {
    this.#recording = on
    return this
  }

  get recording(): boolean {
    return this.#recording
  }

  clearRecorded(): void {
    this.recorded.length = 0
  }

  resetStats(): void {
    this.stats = emptyStats()
  }

  /** Calls `listener` with every packet put on the fabric (before faults apply; `faults` says which did). */
  on(event: 'packet', listener: (packet: RecordedPacket) => void): this {
    if (event !== 'packet') throw new InvalidArgumentError(`unknown fabric event '${String(event)}'; only 'packet'`)
    this.#listeners = [...this.#listeners, listener]
    return this
  }

  off(event: 'packet', listener: (packet: RecordedPacket) => void): this {
    if (event === 'packet') this.#listeners = this.#listeners.filter((l) => l !== listener)
    return this
  }

  // ---- the wire

  /** @internal A host puts a packet on the fabric. */
  transmit(packet: Packet): void {
    const stats = this.stats
    const source = this.#hosts.get(packet.src)
    if (source === undefined || source.killed) {
      stats.dropped.hostDown++
      return
    }
    stats.sent++
    stats.wirePackets += packet.packets
    stats.bytes += packet.payload.length
    if (!this.faults.hasRules && !this.#recording && this.#listeners.length === 0) return this.#enqueue(packet)
    let view: RecordedPacket | null = null
    const faults: FaultKind[] = []
    const viewOf = (): RecordedPacket => (view ??= recordedPacket(packet, performance.now() - this.#createdAt, faults))
    const decision = this.faults.decide(packet, viewOf)
    if (decision !== null) faults.push(...decision.kinds)
    if (this.#recording) this.recorded.push(viewOf())
    for (const listener of this.#listeners) listener(viewOf())
    if (decision === null) return this.#enqueue(packet)
    if (decision.drop) {
      stats.dropped.fault++
      return
    }
    const copies = [packet]
    if (decision.duplicate) {
      stats.duplicated++
      copies.push(packet.clone())
    }
    if (decision.delayMs > 0) {
      stats.delayed++
      const t = setTimeout(() => {
        for (const c of copies) this.#enqueue(c)
      }, decision.delayMs)
      if (!this.refTimers) t.unref()
    } else if (decision.reorder) {
      stats.reordered++
      this.#hold(copies)
    } else {
      for (const c of copies) this.#enqueue(c)
    }
  }

  /** @internal True while packets wait on the wire for the next delivery pass. */
  get delivering(): boolean {
    return this.#wireHead < this.#wire.length
  }

  /** @internal Delivers what is on the wire. */
  drain(): void {
    let budget = DELIVERY_BATCH
    while (this.#wireHead < this.#wire.length) {
      if (--budget < 0) {
        setImmediate(drainLater, this)
        return
      }
      const p = this.#wire[this.#wireHead]!
      this.#wire[this.#wireHead++] = undefined
      this.#deliver(p)
    }
    this.#wire = []
    this.#wireHead = 0
    this.#drainScheduled = false
  }

  #enqueue(packet: Packet): void {
    this.#wire.push(packet)
    if (this.#held.length > 0) this.#releaseHeld()
    if (!this.#drainScheduled) {
      this.#drainScheduled = true
      setImmediate(drainLater, this)
    }
  }

  #deliver(p: Packet): void {
    const stats = this.stats
    const host = this.#hosts.get(p.dst)
    if (host === undefined) {
      stats.dropped.unknownHost++
      return
    }
    if (host.killed) {
      stats.dropped.hostDown++
      return
    }
    const reason = host.deliver(p)
    if (reason === null) stats.delivered++
    else stats.dropped[reason]++
  }

  /** Holds packets until another packet overtakes them. */
  #hold(packets: Packet[]): void {
    this.#held.push(...packets)
    if (this.#heldTimer === null) {
      this.#heldTimer = setTimeout(() => {
        this.#heldTimer = null
        this.#releaseHeld()
      }, REORDER_HOLD_MS)
      if (!this.refTimers) this.#heldTimer.unref()
    }
  }

  #releaseHeld(): void {
    const held = this.#held
    this.#held = []
    if (this.#heldTimer !== null) clearTimeout(this.#heldTimer)
    this.#heldTimer = null
    for (const p of held) this.#enqueue(p)
  }

  #freeAddress(port: number): string {
    for (;;) {
      const n = this.#nextAddress++
      const x = Math.floor(n / 254)
      if (x > 255) throw new InvalidArgumentError('no free 127.77.x.y mock addresses left; pass an address')
      const address = `127.77.${x}.${(n % 254) + 1}`
      if (!this.#hosts.has(hostKey(address, port))) return address
    }
  }

  #setKilled(address: string, port: number | undefined, killed: boolean): number {
    let n = 0
    for (const device of this.#hosts.values()) {
      if (hostAddress(device.key) === address && (port === undefined || device.info.port === port)) {
        device.killed = killed
        n++
      }
    }
    return n
  }
}
