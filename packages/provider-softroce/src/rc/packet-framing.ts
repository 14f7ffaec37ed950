/**
 * Turns an outgoing packet record into the UDP payload (headers, payload, pad,
 * optional AEAD, ICRC) in one contiguous buffer carved from a send slab, and an
 * incoming encrypted datagram back into a decodable plaintext packet.
 *
 * The ICRC is computed over contiguous bytes (wire/icrc.ts), so the payload is
 * copied once into the datagram; slabs are never reused, so a datagram the
 * kernel has not taken yet is never overwritten.
 */
import { PacketProtection, PSP_HEADER_BYTES } from '../crypto/packet-protection.js'
import { writeIcrc, type IpContext } from '../wire/icrc.js'
import { HeaderSize, OPCODE_TABLE } from '../wire/opcodes.js'
import { encodePacketInto, type RocePacket } from '../wire/packet.js'
import type { DropReason } from './device-counters.js'

const SLAB_BYTES = 1 << 20
const EMPTY = new Uint8Array(0)
const ZERO_PAD = new Uint8Array(4)
const BTH = HeaderSize.BTH
const ICRC = HeaderSize.ICRC

/** Hands out slices of large buffers for outgoing datagrams. */
export class SendSlab {
  #slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
  #used = 0

  take(n: number): Buffer {
    if (n > SLAB_BYTES) return Buffer.allocUnsafeSlow(n)
    if (this.#used + n > SLAB_BYTES) {
      this.#slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
      this.#used = 0
    }
    const at = this.#used
    this.#used = (at + n + 7) & ~7
    return this.#slab.subarray(at, at + n)
  }
}

function copyParts(out: Buffer, at: number, parts: readonly Uint8Array[]): number {
  let o = at
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return o
}

/**
 * Builds the datagram for `pkt` (whose payload field is ignored) with `parts`
 * (payloadLength bytes) as payload. Returns null when the QP's tx key is used up.
 */
export function frameOutgoing(slab: SendSlab, pkt: RocePacket, parts: readonly Uint8Array[], payloadLength: number, protection: PacketProtection | null, ip: IpContext): Buffer | null {
  const info = OPCODE_TABLE[pkt.bth.opcode]!
  const hlen = info.headerLength
  const pad = (4 - (payloadLength & 3)) & 3
  pkt.payload = EMPTY
  if (protection === null) {
    const total = hlen + payloadLength + pad + ICRC
    const out = slab.take(total)
    encodePacketInto(pkt, out, 0)
    out[1] = (out[1]! & 0xcf) | (pad << 4)
    let o = copyParts(out, hlen, parts)
    for (let i = 0; i < pad; i++) out[o++] = 0
    writeIcrc(out, o, ip)
    return out
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
  return out
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
