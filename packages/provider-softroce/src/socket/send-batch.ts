/**
 * Batched sends: the first datagram of a synchronous run (a scheduler round, the ACKs of a receive
 * batch) goes out at once with a plain sendmsg, as before batching, so request/response traffic
 * keeps its latency; the ones after it in the same run are held until the microtask after it and
 * handed to the kernel together: one sendmmsg per destination run, in which consecutive datagrams
 * of one size travel as one UDP GSO message (UDP_SEGMENT: the kernel cuts it into complete RoCEv2
 * packets, each with its own headers, payload and ICRC; the last may be shorter).
 *
 * IPv4: the kernel numbers the IDs of a GSO message's segments 0, 1, 2, ... (an unconnected
 * IP_PMTUDISC_DO socket sends ID 0), and the ICRC covers the ID, so segment k's ICRC is patched
 * to the one for ID k (wire/icrc.ts ipv4IdIcrcDelta). A datagram sent on its own again (the
 * kernel's queue was full, GSO was refused) gets its ID-0 ICRC back first.
 *
 * The pieces of a datagram are not copied: the send slab never reuses a piece, and the verbs
 * contract keeps payload memory stable until the data is acknowledged.
 */
import { ipv4IdIcrcDelta, patchIcrc, type IpContext } from '../wire/icrc.js'
import type { WireTarget } from './native-send.js'
import type { RoceBatchAddon } from './sockopt-addon.js'

/** Segments per GSO message (the kernel's UDP_MAX_SEGMENTS is 64 before Linux 6.9, 128 after). */
export const GSO_MAX_SEGMENTS = 64
/** Bytes per GSO message: below the 65,507 bytes of one IPv4 UDP datagram. */
export const GSO_MAX_BYTES = 65000
/** Messages per sendmmsg (the helper's limit). */
const MAX_MESSAGES = 64
/** Pieces per sendmmsg (the helper's limit). */
const MAX_PIECES = 1024
/** Datagrams held before a batch is sent without waiting for the microtask. */
export const BATCH_MAX_DATAGRAMS = 1024

const EAGAIN = 11
/** The errors a kernel that cannot do UDP GSO on this socket or route answers with. */
const GSO_REFUSALS = new Set([5 /* EIO */, 22 /* EINVAL */, 90 /* EMSGSIZE */, 92 /* ENOPROTOOPT */, 95 /* EOPNOTSUPP */, 524 /* ENOTSUPP */])

export interface SendBatchStats {
  /** sendmmsg calls. */
  calls: number
  /** Datagrams that went out in a batch (sendmmsg). */
  batched: number
  /** Datagrams that went out on their own (sendmsg: a batch of one, or a resend). */
  single: number
  /** UDP GSO messages and the datagrams they carried. */
  gsoMessages: number
  gsoSegments: number
}

export interface SendBatchSink {
  /** One sendmsg of a datagram (bytes sent or -errno). */
  sendOne(data: Uint8Array | readonly Uint8Array[], target: WireTarget): number
  /** The kernel's queue is full: these datagrams (contiguous copies, in order) wait for it. */
  blocked(datagrams: { data: Buffer; target: WireTarget }[]): void
  /** A send failed for another reason (errno): `count` datagrams are dropped. */
  sendError(errno: number, count: number): void
  /** UDP GSO was refused (errno): batches go on without it. */
  gsoRefused(errno: number): void
}

function concat(pieces: readonly Uint8Array[], from: number, count: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  let o = 0
  for (let k = 0; k < count; k++) {
    const p = pieces[from + k]!
    out.set(p, o)
    o += p.length
  }
  return out
}

export class SendBatch {
  readonly #addon: RoceBatchAddon
  readonly #fd: number
  readonly #family: 4 | 6
  readonly #sink: SendBatchSink
  #gso: boolean
  /** The pieces of the held datagrams, in order. */
  readonly #pieces: Uint8Array[] = []
  /** Per held datagram: where its pieces start, how many, its length, target and the ICRC delta applied. */
  readonly #first: number[] = []
  readonly #count: number[] = []
  readonly #length: number[] = []
  readonly #targets: WireTarget[] = []
  readonly #applied: number[] = []
  readonly #counts = new Int32Array(MAX_MESSAGES)
  readonly #segs = new Int32Array(MAX_MESSAGES)
  /** Datagram index each message starts at, and how many it carries. */
  readonly #msgAt = new Int32Array(MAX_MESSAGES)
  readonly #msgLen = new Int32Array(MAX_MESSAGES)
  #scheduled = false
  /** Datagrams a sendmsg of their own failed for (not a full queue). */
  #singleErrors = 0
  /** IPv4 with GSO: the buffers holding the ICRCs of the held datagrams. */
  readonly #holders = new Set<Uint8Array>()
  readonly #flush = (): void => this.flush()
  /** A stand-in IPv4 context for the ICRC deltas (they depend on the length and ID only). */
  readonly #ip: IpContext = { family: 4, src: '0.0.0.0', dst: '0.0.0.0', srcPort: 0, dstPort: 0, ipId: 0, df: true }
  readonly stats: SendBatchStats = { calls: 0, batched: 0, single: 0, gsoMessages: 0, gsoSegments: 0 }

  constructor(addon: RoceBatchAddon, fd: number, family: 4 | 6, gso: boolean, sink: SendBatchSink) {
    this.#addon = addon
    this.#fd = fd
    this.#family = family
    this.#gso = gso
    this.#sink = sink
  }

  /** Whether batches use UDP GSO (false once the kernel refused it). */
  get gso(): boolean {
    return this.#gso
  }

  /** Datagrams held for the next flush. */
  get held(): number {
    return this.#targets.length
  }

  /** Holds a datagram (`length` bytes in all) for the batch sent after the current run. */
  push(data: Uint8Array | readonly Uint8Array[], length: number, target: WireTarget): void {
    if (!this.#scheduled) {
      // The first of a run: now, on its own (a ping-pong's datagram waits for nothing).
      this.#scheduled = true
      queueMicrotask(this.#flush)
      this.#sendAlone(data, length, target)
      return
    }
    const at = this.#pieces.length
    if (data instanceof Uint8Array) this.#pieces.push(data)
    else for (const p of data) this.#pieces.push(p)
    if (this.#family === 4 && this.#gso) {
      // Each held datagram needs an ICRC of its own: the same buffer twice (a duplicated datagram) is copied.
      const last = this.#pieces.length - 1
      const holder = this.#pieces[last]!
      if (this.#holders.has(holder)) this.#pieces[last] = Uint8Array.prototype.slice.call(holder)
      else this.#holders.add(holder)
    }
    this.#first.push(at)
    this.#count.push(this.#pieces.length - at)
    this.#length.push(length)
    this.#targets.push(target)
    this.#applied.push(0)
    if (this.#targets.length >= BATCH_MAX_DATAGRAMS) this.#send()
  }

  #sendAlone(data: Uint8Array | readonly Uint8Array[], length: number, target: WireTarget): void {
    this.stats.single++
    const r = this.#sink.sendOne(data, target)
    if (r === -EAGAIN) this.#sink.blocked([{ data: data instanceof Uint8Array ? Buffer.from(data) : Buffer.concat(data as Uint8Array[], length), target }])
    else if (r < 0) this.#sink.sendError(-r, 1)
  }

  /** Drops what is held. */
  clear(): void {
    this.#reset()
  }

  /** Empties the arrays in place (a ping-pong flushes thousands of times a second: no garbage). */
  #reset(): void {
    this.#holders.clear()
    this.#pieces.length = 0
    this.#first.length = 0
    this.#count.length = 0
    this.#length.length = 0
    this.#targets.length = 0
    this.#applied.length = 0
  }

  /** Sends what is held now; the run goes on (datagrams pushed after are held as before). */
  sendHeld(): void {
    this.#send()
  }

  /** Sends what is held now; the run is over (the next datagram goes out at once). */
  flush(): void {
    this.#scheduled = false
    this.#send()
  }

  #send(): void {
    const n = this.#targets.length
    if (n === 0) return
    if (n === 1) {
      const data = this.#count[0] === 1 ? this.#pieces[0]! : this.#pieces.slice()
      const target = this.#targets[0]!
      const length = this.#length[0]!
      this.#reset()
      this.#sendAlone(data, length, target)
      return
    }
    const pieces = this.#pieces
    const numbered = this.#family === 4 && this.#gso
    let i = 0
    while (i < n) {
      // Messages to one target, up to the helper's limits.
      const target = this.#targets[i]!
      let m = 0
      let usedPieces = 0
      const pieceStart = this.#first[i]!
      while (i < n && m < MAX_MESSAGES && this.#targets[i] === target) {
        const end = this.#group(i, n, target, MAX_PIECES - usedPieces)
        if (end === i) break
        let count = 0
        for (let d = i; d < end; d++) count += this.#count[d]!
        this.#msgAt[m] = i
        this.#msgLen[m] = end - i
        this.#counts[m] = count
        this.#segs[m] = end - i > 1 ? this.#length[i]! : 0
        if (end - i > 1 && numbered) for (let d = i; d < end; d++) this.#setId(d, d - i)
        usedPieces += count
        m++
        i = end
      }
      if (m === 0) {
        // One datagram of more pieces than a call takes: on its own (sendTo refuses over 64 pieces, as before batching).
        this.#msgAt[0] = i
        this.#msgLen[0] = 1
        i++
        if (!this.#resendSingly(0, 1, 1, target)) {
          this.#blockFrom(i, n)
          break
        }
        continue
      }
      if (!this.#sendMessages(pieces, pieceStart, m, target)) {
        // The kernel's queue is full: everything after waits, in order.
        this.#blockFrom(i, n)
        break
      }
    }
    // The kernel has copied what it took: every ICRC goes back to ID 0, so a buffer sent again
    // later (a duplicate the impairment layer releases) is right on its own.
    if (numbered) for (let d = 0; d < n; d++) if (this.#applied[d] !== 0) this.#setId(d, 0)
    this.#reset()
  }

  /** The end of the message that starts at datagram i: a run of one size plus one shorter datagram (GSO), or i + 1. */
  #group(i: number, n: number, target: WireTarget, piecesLeft: number): number {
    if (this.#count[i]! > piecesLeft) return i
    if (!this.#gso) return i + 1
    const size = this.#length[i]!
    let bytes = size
    let pieces = this.#count[i]!
    let end = i + 1
    while (end < n && end - i < GSO_MAX_SEGMENTS && this.#targets[end] === target) {
      const len = this.#length[end]!
      if (len > size || bytes + len > GSO_MAX_BYTES || pieces + this.#count[end]! > piecesLeft) break
      bytes += len
      pieces += this.#count[end]!
      end++
      if (len < size) break // the short last segment ends the message
    }
    return end
  }

  /** Makes datagram d's ICRC the one for IPv4 ID `id`. */
  #setId(d: number, id: number): void {
    const want = id === 0 ? 0 : ipv4IdIcrcDelta(this.#ip, this.#length[d]!, id)
    const applied = this.#applied[d]!
    if (want === applied) return
    patchIcrc(this.#pieces[this.#first[d]! + this.#count[d]! - 1]!, (want ^ applied) >>> 0)
    this.#applied[d] = want
  }

  /** Sends the messages; false when the kernel's queue filled (what was left is queued). */
  #sendMessages(pieces: Uint8Array[], pieceStart: number, messages: number, target: WireTarget): boolean {
    let first = 0
    let piece = pieceStart
    while (first < messages) {
      this.stats.calls++
      const r = this.#addon.sendBatch(this.#fd, pieces, piece, this.#counts, this.#segs, first, messages, target.sockaddr, target.tos, target.hopLimit)
      if (r > 0) {
        for (let k = first; k < first + r; k++) {
          piece += this.#counts[k]!
          const len = this.#msgLen[k]!
          this.stats.batched += len
          if (this.#segs[k]! > 0) {
            this.stats.gsoMessages++
            this.stats.gsoSegments += len
          }
        }
        first += r
        continue
      }
      const errno = -r
      if (errno === EAGAIN) {
        this.#blockFrom(this.#msgAt[first]!, this.#msgAt[messages - 1]! + this.#msgLen[messages - 1]!)
        return false
      }
      if (this.#segs[first]! > 0 && GSO_REFUSALS.has(errno)) {
        // The datagrams go again one by one. When they pass, the kernel refuses GSO itself (on
        // this socket or route): from now on one datagram per message. When they fail too (too
        // large for the route: EMSGSIZE), GSO was not the problem and stays.
        const errors = this.#singleErrors
        if (!this.#resendSingly(first, first + 1, messages, target)) return false
        if (this.#singleErrors === errors) {
          this.#gso = false
          this.#sink.gsoRefused(errno)
          return this.#resendSingly(first + 1, messages, messages, target)
        }
        piece += this.#counts[first]!
        first++
        continue
      }
      this.#sink.sendError(errno, this.#msgLen[first]!)
      piece += this.#counts[first]!
      first++
    }
    return true
  }

  /** The datagrams of messages first..messages-1, each on its own (ID 0), in order. */
  /**
   * The datagrams of messages first..last-1, each on its own (ID 0), in order; on a full queue
   * they and those of every message up to `messages` wait. False then.
   */
  #resendSingly(first: number, last: number, messages: number, target: WireTarget): boolean {
    for (let k = first; k < last; k++) {
      const at = this.#msgAt[k]!
      for (let d = at; d < at + this.#msgLen[k]!; d++) {
        if (this.#family === 4) this.#setId(d, 0)
        const f = this.#first[d]!
        const c = this.#count[d]!
        const data = c === 1 ? this.#pieces[f]! : this.#pieces.slice(f, f + c)
        this.stats.single++
        const r = this.#sink.sendOne(data, target)
        if (r === -EAGAIN) {
          this.#blockFrom(d, this.#msgAt[messages - 1]! + this.#msgLen[messages - 1]!)
          return false
        }
        if (r < 0) {
          this.#singleErrors++
          this.#sink.sendError(-r, 1)
        }
      }
    }
    return true
  }

  /** Datagrams from..end-1 wait (as ID-0 copies) for the kernel's queue. */
  #blockFrom(from: number, end: number): void {
    if (from >= end) return
    const out: { data: Buffer; target: WireTarget }[] = []
    for (let d = from; d < end; d++) {
      if (this.#family === 4) this.#setId(d, 0)
      out.push({ data: concat(this.#pieces, this.#first[d]!, this.#count[d]!, this.#length[d]!), target: this.#targets[d]! })
    }
    this.#sink.blocked(out)
  }
}
