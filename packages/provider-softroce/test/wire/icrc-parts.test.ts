/**
 * The ICRC over a packet in pieces (headers, payload views, pad) equals the ICRC over the same
 * bytes in one buffer, and the zero-copy framing of plaintext packets puts on the wire exactly
 * what encodeWithIcrc builds.
 */
import { describe, expect, it } from 'vitest'
import { encodeWithIcrc, verifyIcrc, writeIcrc, writeIcrcOfParts, type IpContext } from '../../src/wire/icrc.js'
import { contiguous, frameOutgoing, SendSlab, SMALL_PAYLOAD } from '../../src/rc/packet-framing.js'
import { encodePacket } from '../../src/wire/packet.js'
import { ALL_OPCODES, Rand, randomPacket } from './random-packets.js'

const IPS: IpContext[] = [
  { family: 4, src: '10.0.0.1', dst: '10.0.0.2', srcPort: 49152, dstPort: 4791, ipId: 0, df: true },
  { family: 4, src: '192.168.1.7', dst: '192.168.1.9', srcPort: 4791, dstPort: 4791, ipId: 0x1234, df: false },
  { family: 6, src: 'fd77::1', dst: 'fd77::2', srcPort: 50000, dstPort: 4791 },
]

/** `bytes` cut at random points (the first piece keeps the BTH whole). */
function split(bytes: Uint8Array, r: Rand): Uint8Array[] {
  const parts: Uint8Array[] = []
  let at = 0
  let first = true
  while (at < bytes.length) {
    const min = first ? Math.min(12, bytes.length - at) : 0
    const len = Math.min(bytes.length - at, min + r.int(64))
    parts.push(bytes.subarray(at, at + len))
    at += len
    first = false
  }
  return parts
}

describe('ICRC over parts', () => {
  it('matches the ICRC of the contiguous packet for every opcode, address family and split', () => {
    const r = new Rand(17)
    for (let i = 0; i < 2000; i++) {
      const ip = r.pick(IPS)
      const pkt = randomPacket(r, r.pick(ALL_OPCODES), 300)
      const body = encodePacket(pkt)
      const whole = Buffer.alloc(body.length + 4)
      whole.set(body)
      writeIcrc(whole, body.length, ip)
      const out = Buffer.alloc(4)
      writeIcrcOfParts(split(body, r), body.length, ip, out, 0)
      expect(out.equals(whole.subarray(body.length))).toBe(true)
    }
  })

  it('plaintext framing sends headers, the payload views and the trailer (small payloads copied into one buffer); the bytes equal encodeWithIcrc', () => {
    const r = new Rand(5)
    const slab = new SendSlab()
    let small = 0
    let large = 0
    for (let i = 0; i < 1000; i++) {
      const ip = r.pick(IPS)
      const info = r.pick(ALL_OPCODES)
      const pkt = randomPacket(r, info, 1500)
      pkt.bth.pkey = 0xffff
      const payload = Buffer.from(pkt.payload)
      const expected = encodeWithIcrc({ ...pkt, bth: { ...pkt.bth }, payload }, ip)
      const framed = frameOutgoing(slab, { ...pkt, bth: { ...pkt.bth } }, split(payload, r).filter((p) => p.length > 0), payload.length, null, ip)!
      expect(framed.length).toBe(expected.length)
      const bytes = contiguous(framed)
      expect(bytes.equals(expected)).toBe(true)
      expect(verifyIcrc(bytes, ip)).toBe(true)
      if (payload.length > SMALL_PAYLOAD) {
        // a large payload travels as views of the caller's memory, not copies
        expect(framed.parts.some((p) => p.buffer === payload.buffer)).toBe(true)
        large++
      } else {
        // a small one is copied next to its headers: one buffer, one CRC pass
        expect(framed.parts).toHaveLength(1)
        expect(framed.parts[0]!.buffer).not.toBe(payload.buffer)
        small++
      }
    }
    expect(small).toBeGreaterThan(100)
    expect(large).toBeGreaterThan(100)
  })
})
