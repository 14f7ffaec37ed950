/**
 * A softroce device: one UDP socket, the QP table (demultiplexed by BTH
 * destination QPN), the MR table, the send scheduler and the drop counters.
 * Every packet sent gets an ICRC; every packet received is ICRC-checked,
 * decoded, decrypted (encrypted QPs) and handed to its QP, or dropped and
 * counted by reason.
 */
import { randomQpn } from '@rdma-session/rc-engine'
import type { Socket } from 'node:dgram'
import {
  ClosedError, QpAttributeError, QpStateError,
  type DeviceInfo, type ProviderCq, type ProviderMetrics, type ProviderDevice, type ProviderPd, type ProviderQp, type ProviderQpInit, type QpQos, type RemoteEndpoint,
} from '@rdma-session/provider-interface'
import { PacketCapture } from './capture.js'
import { SoftRoceCq } from './cq.js'
import { MemoryTable } from './memory/memory-table.js'
import { SoftRocePd, type PdOwner } from './memory/protection-domain.js'
import { DeviceCounters } from './rc/device-counters.js'
import type { DelayWindowConfig } from './rc/delay-window.js'
import { IcrcChecker } from './rc/icrc-check.js'
import type { RcTimers } from './rc/timer-options.js'
import { LinkImpairment, type ImpairmentOptions } from './rc/link-impairment.js'
import { contiguous, frameOutgoing, openIncoming, SendSlab } from './rc/packet-framing.js'
import { SELECTIVE_REPEAT, SoftRoceQp, type QpDevice } from './rc/queue-pair.js'
import { PRIORITY_LATENCY, priorityOfClass, SendFlow, SendScheduler, type PacketSource } from './scheduler/send-scheduler.js'
import type { DeviceSocket } from './device-socket.js'
import type { IpContext } from './wire/icrc.js'
import { encodePacketInto, peekDestQpn, tryDecodePacket, type RocePacket } from './wire/packet.js'
import { HeaderSize, OPCODE_TABLE } from './wire/opcodes.js'
import { isWireError } from './wire/errors.js'
import { addressBytes } from './wire/address.js'
import { NativeSender, type WireTarget } from './socket/native-send.js'
import { MAX_DATAGRAM_BYTES, type BatchedIo, type BatchedIoStats, type NativeDatagramSocket } from './socket/native-datagram.js'
import { HeldDatagrams } from './socket/held-datagrams.js'
import { runOpcode } from './socket/receive-run.js'
import { loadSockoptAddon, nativeSendOf } from './socket/sockopt-addon.js'
import { performance } from 'node:perf_hooks'

const EMPTY_PAYLOAD = new Uint8Array(0)

/** A UD QP of the device (QP1, the CM's general services QP): its datagrams bypass the RC path. */
export interface UdReceiver {
  /** A datagram for this QPN whose ICRC checked out; `ip` is the context it travelled with. */
  receiveUd(datagram: Buffer, ip: IpContext): void
}

/** How a device is set up (resolved from SoftRoceOptions by the provider). */
export interface DeviceConfig {
  readonly name: string
  readonly maxMtu: number
  readonly maxQps: number
  readonly timers: RcTimers
  readonly windowBytes: number
  readonly replayWindow: number
  readonly lazyAcks: boolean
  /** Announce selective repeat and use it with peers that announce it too. */
  readonly selectiveRepeat: boolean
  readonly delayWindow: DelayWindowConfig | null
  readonly capture: string | null
  readonly impairment: ImpairmentOptions | null
}

/** How this device's packets meet the wire: what the socket could be set up for. */
export interface DeviceDiagnostics {
  /** 'native': the socket-options helper set IP_PMTUDISC_DO / UDP_NO_CHECK6_RX; 'none': a plain dgram socket. */
  readonly helper: 'native' | 'none'
  /** IPv4: the kernel writes IP ID 0 + DF, the header our ICRC assumes. Without it kernel rxe drops our IPv4 packets. */
  readonly pmtudiscDo: boolean
  /** IPv6: datagrams with UDP checksum 0 (what rxe sends) are accepted. */
  readonly noCheck6Rx: boolean
  /** Why the helper is absent, when it is. */
  readonly reason?: string
  /**
   * 'native': packets are sent with the helper's sendTo (one sendmsg per datagram, per-QP
   * TOS/traffic class and hop limit on the wire), node:dgram only when the kernel queue is
   * full; 'dgram': node:dgram's send() for every packet.
   */
  readonly sendPath: 'native' | 'dgram'
  /**
   * 'native': the helper reads the socket (recvmmsg, a batch of datagrams per system call and
   * per callback); 'dgram': node:dgram's 'message' events, one per datagram.
   */
  readonly receivePath: 'native' | 'dgram'
  /** With receivePath 'dgram': why the native receive path is not used. */
  readonly receivePathReason?: string
  /** With sendPath 'dgram': why the native send path is not used. */
  readonly sendPathReason?: string
  /**
   * Per-QP traffic class (DSCP/ECN) and hop limit are applied to the IP header: only on the
   * native send path (node:dgram has no per-datagram IP_TOS / IP_TTL). Without it they are
   * recorded per QP (and in captures) only.
   */
  readonly trafficClassApplied: boolean
  /**
   * How the native socket batches system calls when the device opened: send 'gso' (sendmmsg of
   * UDP GSO messages), 'sendmmsg' or 'sendmsg'; receive 'gro' (UDP GRO aggregates split in the
   * helper) or 'recvmmsg'; with the reasons for what is not used. Absent on the node:dgram paths.
   * `SoftRoceDevice.batchedIo` says what is in use now (a GSO send the kernel refuses switches to
   * 'sendmmsg').
   */
  readonly batchedIo?: BatchedIo
}

function runAckFlush(d: SoftRoceDevice): void {
  d.flushAcks()
}

/** Time (ms) held-back datagrams are handled for before the socket is read again. */
const DEFERRED_MS = 0.05

function runDeferred(d: SoftRoceDevice): void {
  d.receiveDeferred()
}

function sameAddress(family: 4 | 6, a: string, b: string): boolean {
  try {
    return Buffer.from(addressBytes(family, a)).equals(addressBytes(family, b))
  } catch {
    return false
  }
}

/**
 * Only the connected peer may talk to a QP: its address, and its UDP source port when the peer
 * announced a fixed one (a softroce peer). Kernel rxe and NICs pick a source port per QP, so
 * toward them the address is all there is to check.
 */
function fromPeer(family: 4 | 6, qp: SoftRoceQp, address: string, port: number): boolean {
  const sourcePort = qp.remote!.sourcePort
  if (sourcePort !== undefined && port !== sourcePort) return false
  const dst = qp.ip!.dst
  return address === dst || sameAddress(family, address, dst)
}

function toGid(family: 4 | 6, address: string): string {
  return family === 4 ? `::ffff:${address}` : address
}

export class SoftRoceDevice implements ProviderDevice, PdOwner, QpDevice {
  readonly info: DeviceInfo
  readonly counters = new DeviceCounters()
  readonly memory = new MemoryTable()
  readonly timers: RcTimers
  readonly maxMtu: number
  readonly windowBytes: number
  readonly replayWindow: number
  readonly lazyAcks: boolean
  readonly selectiveRepeat: boolean
  readonly delayWindow: DelayWindowConfig | null
  /** When a latency-class QP last accepted a packet (performance.now(); -Infinity: never). */
  latencyTrafficAt = -Infinity
  readonly diagnostics: DeviceDiagnostics
  readonly family: 4 | 6
  /** node:dgram (null when the native helper reads and writes the socket: #io). */
  readonly #socket: Socket | null
  readonly #io: NativeDatagramSocket | null
  /** The native send path (null: node:dgram sends everything). */
  readonly #native: NativeSender | null
  /** A datagram went to node:dgram's queue: keep to dgram until it is empty (no reordering). */
  #dgramQueued = false
  readonly #config: DeviceConfig
  readonly #qps = new Map<number, SoftRoceQp>()
  readonly #pds = new Set<SoftRocePd>()
  readonly #cqs = new Set<SoftRoceCq>()
  readonly #scheduler = new SendScheduler()
  readonly #slab = new SendSlab()
  readonly #icrc: IcrcChecker
  readonly #capture: PacketCapture | null
  #impairment: LinkImpairment | null
  #ackQps: SoftRoceQp[] = []
  /** UD QPs by QPN (QP1 when a CM runs on the device). */
  readonly #ud = new Map<number, UdReceiver>()
  /** Datagrams of normal-priority QPs held back in this read batch. */
  readonly #deferred = new HeldDatagrams()
  readonly #processHeld = (datagram: Buffer, address: string, port: number): void => this.#process(datagram, address, port)
  #deferScheduled = false
  #receiving = false
  #ackScheduled = false
  #closed: Promise<void> | null = null

  constructor(config: DeviceConfig, ds: DeviceSocket) {
    this.#config = config
    this.#socket = ds.socket ?? null
    this.#io = ds.io ?? null
    this.family = ds.family
    this.timers = config.timers
    this.maxMtu = config.maxMtu
    this.windowBytes = config.windowBytes
    this.replayWindow = config.replayWindow
    this.lazyAcks = config.lazyAcks
    this.selectiveRepeat = config.selectiveRepeat
    this.delayWindow = config.delayWindow
    // Every packet leaves from the socket's port: peers bind our QPs to address and port (wrongSource).
    this.info = Object.freeze({ name: config.name, address: ds.address, port: ds.port, sourcePort: ds.port, gid: toGid(ds.family, ds.address), ...(config.selectiveRepeat ? { extensions: [SELECTIVE_REPEAT] } : {}) })
    const ns = nativeSendOf(loadSockoptAddon())
    this.#native = this.#io !== null ? this.#io.sender : ns.ok && ds.fd !== undefined ? new NativeSender(ns.addon, ds.fd, ds.family) : null
    const sendPathReason = this.#native !== null ? undefined : !ns.ok ? ns.why : 'the socket\'s file descriptor is not known'
    this.diagnostics = Object.freeze({
      helper: ds.helper,
      pmtudiscDo: ds.pmtudiscDo,
      noCheck6Rx: ds.noCheck6Rx,
      ...(ds.reason === undefined ? {} : { reason: ds.reason }),
      sendPath: this.#native !== null ? 'native' : 'dgram',
      ...(sendPathReason === undefined ? {} : { sendPathReason }),
      receivePath: this.#io !== null ? 'native' : 'dgram',
      ...(this.#io !== null || ds.receivePathReason === undefined ? {} : { receivePathReason: ds.receivePathReason }),
      trafficClassApplied: this.#native !== null,
      ...(this.#io === null ? {} : { batchedIo: this.#io.batchedIo }),
    })
    this.#icrc = new IcrcChecker(ds.family, ds.address, ds.port)
    this.#capture = config.capture === null ? null : new PacketCapture(config.capture)
    this.#impairment = config.impairment === null ? null : new LinkImpairment(config.impairment)
    if (this.#io !== null) {
      this.#io.start({
        onDatagram: (datagram, address, port) => this.#receive(datagram, address, port),
        ...(this.#io.receiveRuns ? { onRun: (index: number, end: number, datagram: Buffer, address: string, port: number) => this.#receiveRun(index, end, datagram, address, port) } : {}),
        onReceiveError: () => this.counters.receiveErrors++,
        onOversized: (bytes) => {
          this.counters.packetsReceived++
          this.counters.bytesReceived += bytes
          this.counters.drop('malformed')
        },
        onSendError: () => this.counters.sendErrors++,
        onSendBlocked: (count) => {
          this.counters.nativeSendFallbacks += count
        },
      })
    } else {
      const socket = this.#socket!
      socket.on('message', (msg, rinfo) => this.#receive(msg, rinfo.address, rinfo.port))
      socket.on('error', () => this.counters.sendErrors++)
    }
  }

  /** The impairment layer of this device's send and receive paths (created on first use). */
  get impairment(): LinkImpairment {
    return (this.#impairment ??= new LinkImpairment())
  }

  /** Replaces the impairment layer (null: none). */
  setImpairment(options: ImpairmentOptions | null): LinkImpairment | null {
    this.#impairment?.drain()
    this.#impairment = options === null ? null : new LinkImpairment(options)
    return this.#impairment
  }

  get capturePath(): string | null {
    return this.#capture?.path ?? null
  }

  /** ProviderDevice.metrics: the device counters, drops by reason and NAKs by kind. */
  metrics(): ProviderMetrics {
    return this.counters.metrics()
  }

  /**
   * The batched socket I/O in use now and its counters (system calls, GSO messages and
   * segments, GRO aggregates and segments); null on the node:dgram paths.
   */
  get batchedIo(): (BatchedIo & { readonly stats: BatchedIoStats; readonly receiveBufferBytes: number }) | null {
    const io = this.#io
    return io === null ? null : { ...io.batchedIo, stats: io.batchedIoStats, receiveBufferBytes: io.receiveBufferBytes }
  }

  /** Live QPs (diagnostics). */
  get qpCount(): number {
    return this.#qps.size
  }

  qp(qpn: number): SoftRoceQp | undefined {
    return this.#qps.get(qpn)
  }

  // ---- objects

  allocPd(): ProviderPd {
    this.#checkOpen()
    const pd = new SoftRocePd(this)
    this.#pds.add(pd)
    return pd
  }

  createCq(depth: number): ProviderCq {
    this.#checkOpen()
    const cq = new SoftRoceCq(depth, (c) => this.#cqs.delete(c))
    this.#cqs.add(cq)
    return cq
  }

  createQp(pd: SoftRocePd, init: ProviderQpInit): ProviderQp {
    this.#checkOpen()
    if (this.#qps.size >= this.#config.maxQps) throw new QpStateError(`device ${this.info.name} already has ${this.#qps.size} QPs (maxQps)`, { maxQps: this.#config.maxQps })
    let qpn = randomQpn()
    while (this.#qps.has(qpn)) qpn = randomQpn()
    const qp = new SoftRoceQp(qpn, pd, init, this)
    this.#qps.set(qpn, qp)
    return qp
  }

  qpsOf(pd: SoftRocePd): number {
    let n = 0
    for (const qp of this.#qps.values()) if (qp.pd === pd) n++
    return n
  }

  forgetPd(pd: SoftRocePd): void {
    this.#pds.delete(pd)
  }

  forgetQp(qp: SoftRoceQp): void {
    if (this.#qps.get(qp.qpn) === qp) this.#qps.delete(qp.qpn)
  }

  close(): Promise<void> {
    if (this.#closed !== null) return this.#closed
    const children = this.#qps.size + this.#cqs.size + this.#pds.size + this.memory.size
    if (children > 0) {
      throw new QpStateError(`device ${this.info.name} still has ${this.#qps.size} QPs, ${this.#cqs.size} CQs, ${this.memory.size} MRs and ${this.#pds.size} PDs; destroy them first`)
    }
    this.#closed = this.#close()
    return this.#closed
  }

  async #close(): Promise<void> {
    this.#scheduler.close()
    this.#impairment?.drain()
    if (this.#io !== null) await this.#io.close()
    else await new Promise<void>((resolve) => this.#socket!.close(() => resolve()))
    await this.#capture?.close()
  }

  #checkOpen(): void {
    if (this.#closed !== null) throw new ClosedError(`device ${this.info.name}`)
  }

  // ---- UD QPs (src/ud)

  /** Routes the datagrams for `qpn` (ICRC checked) to `receiver` instead of the RC QP table. */
  attachUd(qpn: number, receiver: UdReceiver): void {
    this.#checkOpen()
    if (this.#ud.has(qpn) || this.#qps.has(qpn)) throw new QpStateError(`device ${this.info.name} already has QP ${qpn}`)
    this.#ud.set(qpn, receiver)
  }

  detachUd(qpn: number, receiver: UdReceiver): void {
    if (this.#ud.get(qpn) === receiver) this.#ud.delete(qpn)
  }

  /** Sends one complete datagram (ICRC written for `ip`), counted and captured like every other. */
  sendDatagram(datagram: Buffer, ip: IpContext): void {
    if (this.#closed !== null) return
    this.counters.packetsSent++
    this.counters.bytesSent += datagram.length
    if (this.#capture !== null) this.#capture.record(datagram, ip)
    const imp = this.#impairment
    const target = this.#native === null ? null : this.#native.target(ip.dst, ip.dstPort, 0, 0)
    if (imp !== null) imp.outbound(datagram, (d) => this.#sendLater(d, ip, target))
    else if (target === null) this.#socket!.send(datagram, ip.dstPort, ip.dst)
    else this.#send(datagram, target, datagram.length)
  }

  // ---- QpDevice

  ipContextTo(remote: RemoteEndpoint): IpContext {
    let address = remote.address
    if (this.family === 4 && address.startsWith('::ffff:') && address.includes('.')) address = address.slice(7)
    const v4 = /^\d+\.\d+\.\d+\.\d+$/.test(address)
    if ((this.family === 4) !== v4) {
      throw new QpAttributeError('remote', `${remote.address} is not an IPv${this.family} address; device ${this.info.name} is bound to ${this.info.address}`)
    }
    return { family: this.family, src: this.info.address, dst: address, srcPort: this.info.port, dstPort: remote.port, ipId: 0, df: true }
  }

  createFlow(source: PacketSource, qos: QpQos): SendFlow {
    const flow = new SendFlow(source, qos.weight, qos.rateLimitBps, priorityOfClass(qos.className))
    this.#scheduler.add(flow)
    return flow
  }

  wakeFlow(flow: SendFlow): void {
    this.#scheduler.wake(flow)
  }

  removeFlow(flow: SendFlow): void {
    this.#scheduler.remove(flow)
  }

  scheduleAck(qp: SoftRoceQp): void {
    this.#ackQps.push(qp)
    if (this.#ackScheduled) return
    this.#ackScheduled = true
    setImmediate(runAckFlush, this)
  }

  /** @internal Sends the coalesced ACKs of this receive batch. */
  flushAcks(): void {
    this.#ackScheduled = false
    const qps = this.#ackQps
    this.#ackQps = []
    for (const qp of qps) if (!qp.destroyed) qp.flushAck()
  }

  transmit(qp: SoftRoceQp, pkt: RocePacket, parts: readonly Uint8Array[], payloadLength: number): number {
    if (this.#closed !== null) return 0
    const ip = qp.ip!
    const datagram = frameOutgoing(this.#slab, pkt, parts, payloadLength, qp.protection, ip)
    if (datagram === null) {
      qp.enterError('the tx key of this encrypted QP has sealed 2^32 packets; rekey sooner')
      return 0
    }
    const c = this.counters
    c.packetsSent++
    c.bytesSent += datagram.length
    if (this.#capture !== null) this.#capture.record(contiguous(datagram), qp.trafficClass === 0 ? ip : { ...ip, tos: qp.trafficClass })
    const imp = this.#impairment
    const pieces = datagram.parts
    // One piece goes as a plain buffer: dgram copies and checks an array of pieces first.
    const data = pieces.length === 1 ? pieces[0]! : pieces
    if (this.#native === null) {
      if (imp === null) this.#socket!.send(data, ip.dstPort, ip.dst)
      else imp.outbound(contiguous(datagram), (d) => this.#sendLater(d, ip, null))
      return datagram.length
    }
    const target = qp.wireTarget ?? (qp.wireTarget = this.#native.target(ip.dst, ip.dstPort, qp.trafficClass, qp.hopLimit))
    if (imp === null) this.#send(data, target, datagram.length)
    else imp.outbound(contiguous(datagram), (d) => this.#sendLater(d, ip, target))
    return datagram.length
  }

  /**
   * Sends a run of `count` middle packets of one message of plaintext `qp` (headers from `pkt`
   * for the first, payload `payload` of `seg` bytes per packet, AckReq per ackReq[k]) framed by the
   * helper (socket/send-run.ts). Returns the packets sent, 0 when the run path is not available
   * now (encrypted QP, capture or impairment on, no helper run support, the kernel queue full):
   * the requester then sends them one by one.
   */
  transmitRun(qp: SoftRoceQp, pkt: RocePacket, payload: Uint8Array, seg: number, count: number, ackReq: Uint8Array): number {
    const io = this.#io
    if (io === null || !io.runs || this.#closed !== null || qp.protection !== null || this.#capture !== null || this.#impairment !== null) return 0
    const ip = qp.ip!
    const target = qp.wireTarget ?? (qp.wireTarget = this.#native!.target(ip.dst, ip.dstPort, qp.trafficClass, qp.hopLimit))
    const hlen = OPCODE_TABLE[pkt.bth.opcode]!.headerLength
    const header = this.#runHeader.subarray(0, hlen)
    pkt.payload = EMPTY_PAYLOAD
    encodePacketInto(pkt, header, 0)
    header[1] = header[1]! & 0xcf
    const sent = io.sendRun({ header, payload, seg, count, ackReq, ip }, target)
    if (sent > 0) {
      const c = this.counters
      c.packetsSent += sent
      c.bytesSent += sent * (hlen + seg + HeaderSize.ICRC)
    }
    return sent
  }

  readonly #runHeader = new Uint8Array(64)

  /**
   * The native send path. With the native socket (#io) a datagram the kernel cannot queue waits
   * in its queue; with a node:dgram socket it goes to dgram when dgram's queue holds datagrams or
   * the kernel's is full (EAGAIN, ENOBUFS) or on another error (dgram reports it).
   */
  #send(data: Uint8Array | Uint8Array[], target: WireTarget, length: number): void {
    if (this.#io !== null) {
      if (!this.#io.send(data, target, length)) this.counters.nativeSendFallbacks++
      return
    }
    const socket = this.#socket!
    if (this.#dgramQueued) {
      if (socket.getSendQueueCount() > 0) {
        socket.send(data, target.port, target.address)
        return
      }
      this.#dgramQueued = false
    }
    if (this.#native!.send(data, target) >= 0) return
    this.counters.nativeSendFallbacks++
    this.#dgramQueued = true
    socket.send(data, target.port, target.address)
  }

  /** A datagram the impairment layer releases later: the socket may be closed by then. */
  #sendLater(datagram: Buffer, ip: IpContext, target: WireTarget | null): void {
    if (this.#closed !== null) return
    if (target === null) this.#socket!.send(datagram, ip.dstPort, ip.dst)
    else this.#send(datagram, target, datagram.length)
  }

  // ---- receive path

  /**
   * Receive-side priority: node reads a socket in batches (up to 32 datagrams per poll), and
   * while the device has latency-class QPs their packets are handled as they are read, the
   * others at the end of the batch (setImmediate runs after the poll phase), in arrival order.
   * A latency packet read behind a row of bulk packets then does not wait for their ICRC checks,
   * copies and decryption.
   */
  #receive(datagram: Buffer, address: string, port: number): void {
    // Every QP has one send flow for its lifetime: the scheduler's count of latency-class flows is the count of latency-class QPs.
    if (this.#scheduler.latencyFlows > 0) {
      const qp = this.#qps.get(peekDestQpn(datagram))
      if (qp === undefined || qp.priority !== PRIORITY_LATENCY) {
        // A datagram the native path read is a view into its slab, which the next batch overwrites.
        this.#deferred.hold(datagram, address, port, this.#io !== null)
        if (!this.#deferScheduled) {
          this.#deferScheduled = true
          setImmediate(runDeferred, this)
        }
        return
      }
    }
    this.#process(datagram, address, port)
  }

  /**
   * @internal Handles the datagrams held back, in arrival order, for at most DEFERRED_MS; the
   * rest waits for the next turn of the event loop, which reads the socket first (a latency
   * packet that arrived meanwhile goes ahead of them).
   */
  receiveDeferred(): void {
    this.#deferScheduled = false
    if (this.#closed !== null) {
      this.#deferred.clear()
      return
    }
    if (!this.#deferred.handle(this.#processHeld, performance.now() + DEFERRED_MS)) return
    this.#deferScheduled = true
    setImmediate(runDeferred, this)
  }

  /** QpDevice: a received packet is being handled now. */
  get receiving(): boolean {
    return this.#receiving
  }

  #process(datagram: Buffer, address: string, port: number): void {
    this.#receiving = true
    try {
      this.#handle(datagram, address, port)
    } finally {
      this.#receiving = false
    }
  }

  /**
   * A receive run (socket/receive-run.ts): datagram `index` of this batch continues the current
   * WRITE or SEND of a plaintext QP from its peer at the expected PSN; the helper checks and
   * places it and the ones after it that continue the message, and the QP's responder does the
   * bookkeeping of them once. Returns the datagrams consumed (0: the per-packet path takes it).
   * Not while captures, impairments or latency-class QPs (receive priority) are in play.
   */
  #receiveRun(index: number, end: number, datagram: Buffer, address: string, port: number): number {
    if (datagram.length < 16 || !runOpcode(datagram[0]!) || this.#capture !== null || this.#impairment !== null || this.#scheduler.latencyFlows > 0) return 0
    const qp = this.#qps.get(peekDestQpn(datagram))
    if (qp === undefined || qp.protection !== null || qp.ip === null || !fromPeer(this.family, qp, address, port)) return 0
    const plan = qp.receiveRunPlan(datagram[0]!)
    if (plan === null) return 0
    const r = this.#io!.receiveRun(index, end, qp.qpn, this.#icrc.contextFrom(address, port), plan)
    if (r === null || r.packets === 0) return 0
    const c = this.counters
    c.packetsReceived += r.packets
    c.bytesReceived += r.datagramBytes
    c.ipv4IdSolved += r.solved
    qp.qpCounters.packetsReceived += r.packets
    qp.qpCounters.bytesReceived += r.datagramBytes
    this.#receiving = true
    try {
      qp.applyReceiveRun(r.packets, r.bytes, r.ackRequests, r.ended)
    } finally {
      this.#receiving = false
    }
    return r.packets
  }

  #handle(datagram: Buffer, address: string, port: number): void {
    const c = this.counters
    c.packetsReceived++
    c.bytesReceived += datagram.length
    const ip = this.#icrc.contextFrom(address, port)
    if (this.#capture !== null) this.#capture.record(datagram, this.#icrc.wireContext(datagram, ip))
    if (this.#impairment !== null && !this.#impairment.inbound()) return
    if (datagram.length < 16 || datagram.length > MAX_DATAGRAM_BYTES) return c.drop('malformed')
    const icrc = this.#icrc.check(datagram, ip)
    if (icrc === 'bad') return c.drop('badIcrc')
    if (icrc === 'solved') c.ipv4IdSolved++
    const dqpn = peekDestQpn(datagram)
    if (this.#ud.size > 0) {
      const ud = this.#ud.get(dqpn)
      if (ud !== undefined) return ud.receiveUd(datagram, ip)
    }
    const qp = this.#qps.get(dqpn)
    if (qp === undefined) return c.drop('unknownQpn')
    if (qp.ip !== null && !fromPeer(this.family, qp, address, port)) return c.drop('wrongSource')
    let bytes = datagram
    if (qp.protection !== null) {
      const opened = openIncoming(datagram, qp.protection)
      if (typeof opened === 'string') return c.drop(opened)
      bytes = opened
    }
    // A SACK block after an ACK's AETH: only from a peer selective repeat was negotiated with.
    const pkt = tryDecodePacket(bytes, qp.selectiveRepeat)
    if (isWireError(pkt)) return c.drop('malformed')
    // The default partition (full or limited membership) is the only one RoCE QPs here use.
    if ((pkt.bth.pkey & 0x7fff) !== 0x7fff) return c.drop('malformed')
    qp.qpCounters.packetsReceived++
    qp.qpCounters.bytesReceived += datagram.length
    const dropped = qp.receivePacket(pkt as RocePacket)
    if (dropped !== null) c.drop(dropped)
    // Latency-class traffic (what tightens the bulk QPs' delay window): packets a QP accepted
    // only, so a datagram that merely names a latency QP's QPN does not slow the bulk QPs.
    else if (qp.priority === PRIORITY_LATENCY) this.latencyTrafficAt = performance.now()
  }
}
