import { crc32 } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { CRC32_RESIDUE, CrcAdvance, crcAdvance, crcRegister } from '../../src/wire/crc32.js'
import { Rand } from './random-packets.js'

describe('CRC-32 register helpers', () => {
  it('crcRegister agrees with zlib.crc32 (complemented state)', () => {
    const r = new Rand(32)
    for (let i = 0; i < 200; i++) {
      const b = r.bytes(r.int(300))
      expect(~crcRegister(0xffffffff, b) >>> 0).toBe(crc32(b))
      const split = r.int(b.length + 1)
      expect(~crcRegister(~crc32(b.subarray(0, split)) >>> 0, b, split) >>> 0).toBe(crc32(b))
    }
  })

  it('advance maps equal feeding zero bytes, for any length', () => {
    const r = new Rand(33)
    for (const n of [0, 1, 2, 3, 7, 16, 38, 64, 1000, 1027, 4096, 9000, 65535]) {
      const zeros = new Uint8Array(n)
      const a = CrcAdvance.zeros(n)
      for (let i = 0; i < 5; i++) {
        const s = r.u32()
        const want = crcRegister(s, zeros)
        expect(crcAdvance(s, n)).toBe(want)
        expect(a.apply(s)).toBe(want)
      }
    }
    expect(CrcAdvance.zeros(5).doubled().apply(0x12345678)).toBe(CrcAdvance.zeros(10).apply(0x12345678))
  })

  it('a message followed by its little-endian CRC has the constant residue', () => {
    const r = new Rand(34)
    for (let i = 0; i < 50; i++) {
      const m = r.bytes(r.int(100))
      const c = Buffer.alloc(4)
      c.writeUInt32LE(crc32(m))
      expect(crc32(Buffer.concat([m, c]))).toBe(CRC32_RESIDUE)
    }
  })
})
