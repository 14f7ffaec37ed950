/**
 * The device's socket when the native helper has its receive path: the helper reads the fd with
 * recvmmsg into one slab (a batch of datagrams per system call and per callback into JavaScript)
 * and sends with sendmsg (NativeSender); node:dgram is not involved. node:dgram's receive path
 * costs, per datagram, a fresh buffer, an address object built property by property, an address
 * string printed with inet_ntop, and a second recvmsg that fails with EAGAIN; on a small-packet
 * ping-pong that is a large part of the CPU time per round trip.
 *
 * The datagrams handed to `onDatagram` are views into the slab: they are valid during the call
 * only (the next batch overwrites them). A datagram the kernel cannot queue (EAGAIN) is copied
 * and sent, in order, once the socket is writable again.
 */
import { closeSync } from 'node:fs'
import { FifoQueue } from '@rdma-session/provider-interface'
import { NativeSender, type WireTarget } from './native-send.js'
import { SendBatch, type SendBatchStats } from './send-batch.js'
import { runCrc, type PacketRun } from './send-run.js'
import { ReceiveRuns, type ReceiveRunPlan, type ReceiveRunResult } from './receive-run.js'
import { batchOf, envOff, GRO_DISABLE_ENV, GSO_DISABLE_ENV, receiveRunOf, RUN_DISABLE_ENV, runOf, type RoceBatchAddon, type RoceRunAddon, type RoceReceiveAddon, type RoceSockoptAddon } from './sockopt-addon.js'
import type { IpContext } from '../wire/icrc.js'
import { ipv6GroupsText } from '../wire/ipv6-text.js'

/**
 * The largest datagram a device takes: a 4096-byte MTU packet with every RoCE header and the
 * encryption header and tag fits with room to spare. Larger ones are dropped as malformed on
 * both receive paths.
 */
export const MAX_DATAGRAM_BYTES = 8192
/** Bytes per slot of the receive slab. */
export const RECEIVE_SLOT_BYTES = MAX_DATAGRAM_BYTES
/** Datagrams per recvmmsg. */
export const RECEIVE_SLOTS = 32
/** Int32 words per datagram in the meta array: length, port, family, address (4 words), offset in the slab. */
export const RECEIVE_META = 8
/** With UDP_GRO: bytes per slot (a whole aggregate), slots per recvmmsg, and datagrams per callback. */
export const GRO_SLOT_BYTES = 65536
export const GRO_SLOTS = 16
export const GRO_META_ENTRIES = 1024

/** How the socket batches its system calls. */
export interface BatchedIo {
  /** 'gso': sendmmsg of UDP GSO messages; 'sendmmsg': sendmmsg of single datagrams; 'sendmsg': one call per datagram. */
  readonly send: 'gso' | 'sendmmsg' | 'sendmsg'
  /** 'gro': recvmmsg of UDP GRO aggregates, split here; 'recvmmsg': recvmmsg of single datagrams. */
  readonly receive: 'gro' | 'recvmmsg'
  /** Why send is not 'gso' / receive is not 'gro'. */
  readonly sendReason?: string
  readonly receiveReason?: string
  /** Received packets continuing a WRITE or SEND are checked and placed by the helper in runs (socket/receive-run.ts). */
  readonly receiveRuns: boolean
  /** Why receive runs are not used. */
  readonly receiveRunsReason?: string
}

export interface BatchedIoStats extends SendBatchStats {
  /** recvmmsg calls that read something, datagrams they read, GRO aggregates and the segments in them. */
  reads: number
  datagrams: number
  aggregates: number
  segments: number
  /** Runs the helper framed and sent (sendRun), and their packets (also counted in calls, batched and the GSO counters). */
  runs: number
  runPackets: number
  /** Receive runs the helper checked and placed, and their packets (also counted in datagrams/segments). */
  receiveRuns: number
  receiveRunPackets: number
}

const ERRNO_NAMES: Record<number, string> = { 5: 'EIO', 22: 'EINVAL', 90: 'EMSGSIZE', 92: 'ENOPROTOOPT', 95: 'EOPNOTSUPP', 524: 'ENOTSUPP' }
const errnoName = (e: number): string => ERRNO_NAMES[e] ?? `errno ${e}`

/** EAGAIN (= EWOULDBLOCK on Linux): the kernel's send queue is full. */
const EAGAIN = 11

export type DatagramHandler = (datagram: Buffer, address: string, port: number) => void

export interface NativeDatagramEvents {
  onDatagram: DatagramHandler
  /**
   * Before onDatagram: datagram `index` of `end` in this batch may start a receive run
   * (receiveRun); returns how many datagrams from `index` on were consumed (0: none, onDatagram
   * gets it).
   */
  onRun?(index: number, end: number, datagram: Buffer, address: string, port: number): number
  /** A receive error (errno). */
  onReceiveError(errno: number): void
  /** A datagram larger than a slot arrived (`bytes` long, cut short by the kernel: it is dropped). */
  onOversized(bytes: number): void
  /** A send failed for another reason than a full queue (errno): the datagram is dropped. */
  onSendError(errno: number): void
  /** A batch met a full kernel queue: `count` datagrams wait for the socket to be writable (copies). */
  onSendBlocked?(count: number): void
}

function ipv4Text(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`
}

function ipv6Text(w: Int32Array, at: number): string {
  if (w[at] === 0 && w[at + 1] === 0 && w[at + 2] === 0xffff) return `::ffff:${ipv4Text(w[at + 3]! >>> 0)}`
  const groups: number[] = []
  for (let k = 0; k < 4; k++) {
    const word = w[at + k]! >>> 0
    groups.push(word >>> 16, word & 0xffff)
  }
  return ipv6GroupsText(groups)
}

export class NativeDatagramSocket {
  readonly fd: number
  /** Where the socket is bound. */
  readonly address: string
  readonly port: number
  readonly #addon: Required<RoceSockoptAddon> & RoceReceiveAddon
  readonly #sender: NativeSender
  #slab: Buffer
  #meta: Int32Array
  readonly #batchAddon: RoceBatchAddon | null
  readonly #batch: SendBatch | null
  /** The helper's run framing while UDP GSO works (null: older helper, GSO off, or a run send failed). */
  #runs: RoceRunAddon | null
  /** The helper's receive runs (null: RDMA_SESSION_SOFTROCE_RECEIVE_RUNS=off / RUNS=off, or an older helper). */
  readonly #receiveRuns: ReceiveRuns | null
  #mode: BatchedIo
  /** Source addresses as text, by IPv4 address or by the IPv6 words joined. */
  readonly #v4Names = new Map<number, string>()
  readonly #v6Names = new Map<string, string>()
  #handle: object | null = null
  #events: NativeDatagramEvents | null = null
  /** Datagrams waiting for the socket to be writable (copies), in send order. */
  readonly #queue = new FifoQueue<{ data: Buffer; target: WireTarget }>()
  #closed: Promise<void> | null = null
  #onClosed: (() => void) | null = null

  constructor(addon: Required<RoceSockoptAddon> & RoceReceiveAddon, fd: number, family: 4 | 6) {
    this.#addon = addon
    this.fd = fd
    const bound = addon.socketAddress(fd)
    this.address = bound.address
    this.port = bound.port
    this.#sender = new NativeSender(addon, fd, family)
    const b = batchOf(addon)
    this.#batchAddon = b.ok ? b.addon : null
    let gso = false
    let sendReason: string | undefined = b.ok ? undefined : b.why
    let receiveReason: string | undefined = b.ok ? undefined : b.why
    let gro = false
    if (b.ok) {
      const wantGro = !envOff(GRO_DISABLE_ENV)
      const probe = b.addon.udpOffload(fd, wantGro)
      gso = probe.segment === 0 && !envOff(GSO_DISABLE_ENV)
      if (!gso) sendReason = probe.segment !== 0 ? `the kernel refused UDP_SEGMENT (${errnoName(probe.segment)})` : `UDP GSO is disabled by ${GSO_DISABLE_ENV}=${process.env[GSO_DISABLE_ENV] ?? ''}`
      gro = wantGro && probe.gro === 0
      if (!gro) receiveReason = wantGro ? `the kernel refused UDP_GRO (${errnoName(probe.gro)})` : `UDP GRO is disabled by ${GRO_DISABLE_ENV}=${process.env[GRO_DISABLE_ENV] ?? ''}`
    }
    this.#batch = b.ok
      ? new SendBatch(b.addon, fd, family, gso, {
        sendOne: (data, target) => this.#sender.send(data, target),
        blocked: (datagrams) => this.#blocked(datagrams),
        sendError: (errno, count) => {
          for (let k = 0; k < count; k++) this.#events?.onSendError(errno)
        },
        gsoRefused: (errno) => {
          this.#mode = { ...this.#mode, send: 'sendmmsg', sendReason: `the kernel refused a UDP GSO send (${errnoName(errno)})` }
        },
      })
      : null
    this.#runs = b.ok && gso && !envOff(RUN_DISABLE_ENV) ? runOf(addon) : null
    const rr = receiveRunOf(addon)
    this.#receiveRuns = rr.ok ? new ReceiveRuns(rr.addon) : null
    this.#mode = {
      receiveRuns: rr.ok,
      ...(rr.ok ? {} : { receiveRunsReason: rr.why }),
      send: gso ? 'gso' : b.ok ? 'sendmmsg' : 'sendmsg',
      receive: gro ? 'gro' : 'recvmmsg',
      ...(sendReason === undefined ? {} : { sendReason }),
      ...(receiveReason === undefined ? {} : { receiveReason }),
    }
    this.#slab = Buffer.alloc(gro ? GRO_SLOT_BYTES * GRO_SLOTS : RECEIVE_SLOT_BYTES * RECEIVE_SLOTS)
    this.#meta = new Int32Array((gro ? GRO_META_ENTRIES : RECEIVE_SLOTS) * RECEIVE_META)
  }

  /** How sends and receives are batched now (GSO can be refused at run time). */
  get batchedIo(): BatchedIo {
    return this.#mode
  }

  /** Counters of the batched paths (zeros where they are not used). */
  get batchedIoStats(): BatchedIoStats {
    const s = this.#batch?.stats ?? { calls: 0, batched: 0, single: 0, gsoMessages: 0, gsoSegments: 0 }
    const r = this.#handle !== null && this.#batchAddon !== null ? this.#batchAddon.receiverStats(this.#handle) : { reads: 0, datagrams: 0, aggregates: 0, segments: 0 }
    const u = this.#runStats
    return {
      ...s, calls: s.calls + u.runs, batched: s.batched + u.runPackets, gsoMessages: s.gsoMessages + u.runMessages, gsoSegments: s.gsoSegments + u.runPackets,
      runs: u.runs, runPackets: u.runPackets, receiveRuns: u.receiveRuns, receiveRunPackets: u.receiveRunPackets, ...r,
    }
  }

  /** Bytes of receive buffers this socket holds (the slab and its meta array). */
  get receiveBufferBytes(): number {
    return this.#slab.length + this.#meta.byteLength
  }

  get sender(): NativeSender {
    return this.#sender
  }

  /** Whether sendRun frames and sends runs (the helper has it, UDP GSO works, no run send failed). */
  get runs(): boolean {
    return this.#runs !== null
  }

  /**
   * Sends a run of packets framed by the helper (send-run.ts) after the datagrams held before it;
   * returns how many of its packets went out (whole GSO messages), 0 when none did: the caller
   * then sends them one by one as before (a full kernel queue or an error is handled there). A
   * send error other than a full queue stops runs on this socket.
   */
  sendRun(run: PacketRun, target: WireTarget): number {
    const addon = this.#runs
    if (addon === null || this.#closed !== null || !this.#queue.empty || this.#batch === null || !this.#batch.gso) return 0
    this.#batch.sendHeld()
    if (!this.#queue.empty) return 0
    const c = runCrc(run)
    const r = addon.sendRun(this.fd, run.header, run.payload, run.seg, run.count, run.ackReq, c.crcStart, c.idBasis, c.segsPerMsg, target.sockaddr, target.tos, target.hopLimit)
    if (r < 0) {
      if (r !== -EAGAIN) this.#runs = null
      return 0
    }
    const u = this.#runStats
    u.runs++
    u.runPackets += r
    u.runMessages += Math.ceil(r / c.segsPerMsg)
    return r
  }

  readonly #runStats = { runs: 0, runPackets: 0, runMessages: 0, receiveRuns: 0, receiveRunPackets: 0 }

  /** Whether the helper takes receive runs (receiveRun). */
  get receiveRuns(): boolean {
    return this.#receiveRuns !== null
  }

  /**
   * During onRun: lets the helper check and place the datagrams of this batch from `first` on
   * (before `end`) that continue the message `plan` describes for QP `dqpn` (socket/receive-run.ts).
   */
  receiveRun(first: number, end: number, dqpn: number, ip: IpContext, plan: ReceiveRunPlan): ReceiveRunResult | null {
    const rr = this.#receiveRuns
    if (rr === null) return null
    const r = rr.run(this.#slab, this.#meta, first, end, dqpn, ip, plan)
    if (r.packets > 0) {
      this.#runStats.receiveRuns++
      this.#runStats.receiveRunPackets += r.packets
    }
    return r
  }

  /** Datagrams waiting for the kernel's send queue. */
  get queued(): number {
    return this.#queue.length
  }

  start(events: NativeDatagramEvents): void {
    if (this.#handle !== null || this.#closed !== null) return
    this.#events = events
    const gro = this.#mode.receive === 'gro'
    this.#handle = this.#addon.openReceiver(this.fd, this.#slab, this.#meta, gro ? GRO_SLOT_BYTES : RECEIVE_SLOT_BYTES,
      (count) => this.#received(count), () => this.#flush(), () => this.#onClosed?.(), gro)
  }

  #received(count: number): void {
    const ev = this.#events!
    if (count < 0) {
      ev.onReceiveError(-count)
      return
    }
    const m = this.#meta
    for (let i = 0; i < count && this.#closed === null; i++) {
      const at = i * RECEIVE_META
      const len = m[at]!
      if (len < 0) {
        ev.onOversized(-len)
        continue
      }
      const start = m[at + 7]!
      const datagram = this.#slab.subarray(start, start + len)
      const address = this.#address(m, at)
      if (ev.onRun !== undefined) {
        const taken = ev.onRun(i, count, datagram, address, m[at + 1]!)
        if (taken > 0) {
          i += taken - 1
          continue
        }
      }
      ev.onDatagram(datagram, address, m[at + 1]!)
    }
  }

  #address(m: Int32Array, at: number): string {
    if (m[at + 2] === 4) {
      const a = m[at + 3]! >>> 0
      let name = this.#v4Names.get(a)
      if (name === undefined) {
        name = ipv4Text(a)
        if (this.#v4Names.size >= 4096) this.#v4Names.clear()
        this.#v4Names.set(a, name)
      }
      return name
    }
    const key = `${m[at + 3]},${m[at + 4]},${m[at + 5]},${m[at + 6]}`
    let name = this.#v6Names.get(key)
    if (name === undefined) {
      name = ipv6Text(m, at + 3)
      if (this.#v6Names.size >= 4096) this.#v6Names.clear()
      this.#v6Names.set(key, name)
    }
    return name
  }

  /**
   * Sends now, or queues a copy behind earlier datagrams while the kernel's queue is full. Returns
   * false when the datagram was queued. With the batched path and the datagram's `length`, it is
   * held and sent with the others of this run after it (SendBatch); `data` must then stay unchanged
   * until the next microtask.
   */
  send(data: Uint8Array | readonly Uint8Array[], target: WireTarget, length = -1): boolean {
    if (this.#closed !== null) return true
    if (this.#batch !== null && length >= 0) {
      if (this.#queue.empty) {
        this.#batch.push(data, length, target)
        return true
      }
    } else if (this.#queue.empty) {
      const r = this.#sender.send(data, target)
      if (r >= 0) return true
      if (r !== -EAGAIN) {
        this.#events?.onSendError(-r)
        return true
      }
      this.#addon.armWritable(this.#handle!)
    }
    this.#queue.push({ data: Buffer.concat(data instanceof Uint8Array ? [data] : (data as Uint8Array[])), target })
    return false
  }

  /** The batch met a full kernel queue: these wait, in order, for the socket to be writable. */
  #blocked(datagrams: { data: Buffer; target: WireTarget }[]): void {
    if (this.#closed !== null) return
    if (this.#queue.empty) this.#addon.armWritable(this.#handle!)
    for (const d of datagrams) this.#queue.push(d)
    this.#events?.onSendBlocked?.(datagrams.length)
  }

  #flush(): void {
    for (let next = this.#queue.peek(); next !== undefined && this.#closed === null; next = this.#queue.peek()) {
      const r = this.#sender.send(next.data, next.target)
      if (r === -EAGAIN) {
        this.#addon.armWritable(this.#handle!)
        return
      }
      if (r < 0) this.#events?.onSendError(-r)
      this.#queue.shift()
    }
  }

  /** Stops receiving, drops what is queued, closes the fd. */
  close(): Promise<void> {
    if (this.#closed !== null) return this.#closed
    this.#queue.clear()
    this.#batch?.clear()
    const handle = this.#handle
    if (handle === null) {
      closeSync(this.fd)
      this.#closed = Promise.resolve()
      return this.#closed
    }
    this.#closed = new Promise<void>((resolve) => {
      this.#onClosed = resolve
    })
    this.#addon.closeReceiver(handle)
    return this.#closed
  }
}
