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
import { FifoQueue } from '@rdma-session/core'
import { NativeSender, type WireTarget } from './native-send.js'
import type { RoceReceiveAddon, RoceSockoptAddon } from './sockopt-addon.js'

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
/** Int32 words per datagram in the meta array: length, port, family, address (4 words). */
export const RECEIVE_META = 8

/** EAGAIN (= EWOULDBLOCK on Linux): the kernel's send queue is full. */
const EAGAIN = 11

export type DatagramHandler = (datagram: Buffer, address: string, port: number) => void

export interface NativeDatagramEvents {
  onDatagram: DatagramHandler
  /** A receive error (errno). */
  onReceiveError(errno: number): void
  /** A datagram larger than a slot arrived (`bytes` long, cut short by the kernel: it is dropped). */
  onOversized(bytes: number): void
  /** A send failed for another reason than a full queue (errno): the datagram is dropped. */
  onSendError(errno: number): void
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
  // RFC 5952: the longest run of two or more zero groups becomes '::'.
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (best < 0) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`
}

export class NativeDatagramSocket {
  readonly fd: number
  /** Where the socket is bound. */
  readonly address: string
  readonly port: number
  readonly #addon: Required<RoceSockoptAddon> & RoceReceiveAddon
  readonly #sender: NativeSender
  readonly #slab = Buffer.alloc(RECEIVE_SLOT_BYTES * RECEIVE_SLOTS)
  readonly #meta = new Int32Array(RECEIVE_SLOTS * RECEIVE_META)
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
  }

  get sender(): NativeSender {
    return this.#sender
  }

  /** Datagrams waiting for the kernel's send queue. */
  get queued(): number {
    return this.#queue.length
  }

  start(events: NativeDatagramEvents): void {
    if (this.#handle !== null || this.#closed !== null) return
    this.#events = events
    this.#handle = this.#addon.openReceiver(this.fd, this.#slab, this.#meta, RECEIVE_SLOT_BYTES,
      (count) => this.#batch(count), () => this.#flush(), () => this.#onClosed?.())
  }

  #batch(count: number): void {
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
      const start = i * RECEIVE_SLOT_BYTES
      ev.onDatagram(this.#slab.subarray(start, start + len), this.#address(m, at), m[at + 1]!)
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

  /** Sends now, or queues a copy behind earlier datagrams while the kernel's queue is full. Returns false when the datagram was queued. */
  send(data: Uint8Array | readonly Uint8Array[], target: WireTarget): boolean {
    if (this.#closed !== null) return true
    if (this.#queue.empty) {
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
