/**
 * Turns an outgoing packet record into the UDP payload (headers, payload, pad, optional AEAD,
 * ICRC), and an incoming encrypted datagram back into a decodable plaintext packet.
 *
 * A plaintext packet is not copied together: the headers and the trailer (pad + ICRC) come from a
 * send slab, the payload stays in the registered memory it was gathered from, the ICRC runs over
 * the pieces in order (wire/icrc.ts writeIcrcOfParts) and the socket sends them with one sendmsg.
 * The verbs contract (a WR's memory is not modified before its completion, and a completion
 * needs the ACK of the data) keeps the payload stable until the kernel has copied it. Slabs are
 * never reused, so a header the kernel has not taken yet is never overwritten. Encrypted packets
 * are sealed into one contiguous buffer.
 */
import { PacketProtection, PSP_HEADER_BYTES } from '../crypto/packet-protection.js'
import { writeIcrc, writeIcrcOfParts, type IpContext } from '../wire/icrc.js'
import { HeaderSize, OPCODE_TABLE } from '../wire/opcodes.js'
import { encodePacketInto, type RocePacket } from '../wire/packet.js'
import type { DropReason } from './device-counters.js'

const SLAB_BYTES = 1 << 20
/** Payloads up to this many bytes are copied next to their headers instead of sent as views. */
export const SMALL_PAYLOAD = 512
const EMPTY = new Uint8Array(0)
const ZERO_PAD = new Uint8Array(4)
const BTH = HeaderSize.BTH
const ICRC = HeaderSize.ICRC

/** `n` bytes, not zeroed (every byte handed out is written before it is sent). */
function uninitialized(n: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(n)
  return new Uint8Array(b.buffer, b.byteOffset, b.length)
}

/** Hands out slices of large buffers for outgoing datagrams. */
export class SendSlab {
  // A plain Uint8Array view: subarray() is a V8 builtin (Buffer's runs through JS), and dgram
  // takes any ArrayBufferView.
  #slab = uninitialized(SLAB_BYTES)
  #used = 0

  take(n: number): Uint8Array {
    if (n > SLAB_BYTES) return uninitialized(n)
    if (this.#used + n > SLAB_BYTES) {
      this.#slab = uninitialized(SLAB_BYTES)
      this.#used = 0
    }
    const at = this.#used
    this.#used = (at + n + 7) & ~7
    return this.#slab.subarray(at, at + n)
  }
}

function copyParts(out: Uint8Array, at: number, parts: readonly Uint8Array[]): number {
  let o = at
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return o
}

/** One datagram as the pieces to send in order, `length` bytes in all. */
export interface OutgoingDatagram {
  readonly parts: Uint8Array[]
  readonly length: number
}

/** The datagram as one buffer (for captures and the impairment layer). */
export function contiguous(d: OutgoingDatagram): Buffer {
  const only = d.parts.length === 1 ? d.parts[0] : undefined
  if (only !== undefined) return Buffer.isBuffer(only) ? only : Buffer.from(only.buffer, only.byteOffset, only.byteLength)
  return Buffer.concat(d.parts, d.length)
}

/**
 * Builds the datagram for `pkt` (whose payload field is ignored) with `parts`
 * (payloadLength bytes) as payload. Returns null when the QP's tx key is used up.
 */
export function frameOutgoing(slab: SendSlab, pkt: RocePacket, parts: readonly Uint8Array[], payloadLength: number, protection: PacketProtection | null, ip: IpContext): OutgoingDatagram | null {
  const info = OPCODE_TABLE[pkt.bth.opcode]!
  const hlen = info.headerLength
  const pad = (4 - (payloadLength & 3)) & 3
  pkt.payload = EMPTY
  if (protection === null && payloadLength <= SMALL_PAYLOAD) {
    // A small packet is cheaper copied together: one CRC pass, one buffer for the socket.
    const length = hlen + payloadLength + pad
    const out = slab.take(length + ICRC)
    encodePacketInto(pkt, out, 0)
    out[1] = (out[1]! & 0xcf) | (pad << 4)
    for (let o = copyParts(out, hlen, parts); o < length; o++) out[o] = 0
    writeIcrc(out, length, ip)
    return { parts: [out], length: length + ICRC }
  }
  if (protection === null) {
    // headers | payload views | pad + ICRC: one slab piece holds the headers and the trailer
    const piece = slab.take(hlen + pad + ICRC)
    encodePacketInto(pkt, piece, 0)
    piece[1] = (piece[1]! & 0xcf) | (pad << 4)
    const hdr = piece.subarray(0, hlen)
    const out: Uint8Array[] = [hdr]
    for (const p of parts) if (p.length > 0) out.push(p)
    const trailer = piece.subarray(hlen)
    trailer.fill(0, 0, pad)
    const length = hlen + payloadLength + pad
    if (pad > 0) out.push(trailer.subarray(0, pad))
    writeIcrcOfParts(out, length, ip, trailer, pad)
    if (pad > 0) out[out.length - 1] = trailer
    else out.push(trailer)
    return { parts: out, length: length + ICRC }
  }
  const hdr = Buffer.allocUnsafe(hlen)
  encodePacketInto(pkt, hdr, 0)
  hdr[1] = (hdr[1]! & 0xcf) | (pad << 4)
  const plain: Uint8Array[] = [hdr.subarray(BTH), ...parts]
  if (pad > 0) plain.push(ZERO_PAD.subarray(0, pad))
  const sealed = protection.seal(hdr, plain)
  if (sealed === null) return null
  let total = BTH + ICRC
  for (const s of sealed) total += s.length
  const out = slab.take(total)
  out.set(hdr.subarray(0, BTH), 0)
  const o = copyParts(out, BTH, sealed)
  writeIcrc(out, o, ip)
  return { parts: [out], length: out.length }
}

/**
 * Authenticates and decrypts an encrypted datagram (ICRC already checked) into
 * BTH | plaintext | 4 spare bytes, the layout decodePacket expects.
 */
export function openIncoming(datagram: Buffer, protection: PacketProtection): Buffer | DropReason {
  if (datagram.length < BTH + PSP_HEADER_BYTES + ICRC) return 'malformed'
  const plain = protection.open(datagram.subarray(0, datagram.length - ICRC))
  if (typeof plain === 'string') return plain
  const out = Buffer.allocUnsafe(BTH + plain.length + ICRC)
  datagram.copy(out, 0, 0, BTH)
  out.set(plain, BTH)
  out.fill(0, BTH + plain.length)
  return out
}
