// The helper's CRC-32 (native/crc32_fold.c, carry-less multiplication) against zlib's, which the
// ICRC code used alone before: same value for every length, alignment and running value, so
// the packets on the wire do not depend on which engine computed their ICRCs.
import { randomBytes } from 'node:crypto'
import { crc32 as zlibCrc32 } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadSockoptAddon, resetSockoptAddon, type RoceCrcAddon } from '../../src/socket/sockopt-addon.js'
import { crc32Engine, NATIVE_CRC_DISABLE_ENV } from '../../src/wire/crc32-engine.js'
import { icrc } from '../../src/wire/icrc.js'
import { ensureAddonBuilt } from '../socket/helpers.js'

let addon: RoceCrcAddon

beforeAll(() => {
  const state = ensureAddonBuilt()
  if (!state.loaded) throw new Error(state.why)
  const { crc32, crc32Accelerated } = state.addon as Partial<RoceCrcAddon>
  if (typeof crc32 !== 'function' || typeof crc32Accelerated !== 'boolean') throw new Error(`${state.path} has no crc32`)
  addon = { crc32, crc32Accelerated }
}, 200_000)
afterAll(() => {
  delete process.env[NATIVE_CRC_DISABLE_ENV]
  resetSockoptAddon()
})

describe('the helper crc32', () => {
  const data = randomBytes(70_000)

  it('equals zlib.crc32 at every length 0..300 and offset 0..15, from random running values', () => {
    let compared = 0
    for (let off = 0; off < 16; off++) {
      for (let len = 0; len <= 300; len++) {
        const v = data.subarray(off, off + len)
        const seed = data.readUInt32LE(off + len)
        expect(addon.crc32(v, seed), `length ${len} at offset ${off}`).toBe(zlibCrc32(v, seed))
        compared++
      }
    }
    expect(compared).toBe(16 * 301)
  })

  it('equals zlib.crc32 on 2,000 random slices up to 65,535 bytes (the GRO and jumbo sizes)', () => {
    for (let i = 0; i < 2000; i++) {
      const off = data[i]! % 64
      const len = data.readUInt16LE(2 * i + 64)
      const v = data.subarray(off, off + len)
      expect(addon.crc32(v, i), `length ${len} at offset ${off}`).toBe(zlibCrc32(v, i))
    }
  })

  it('refuses what is not a Uint8Array and a uint32 with a TypeError', () => {
    expect(() => addon.crc32('abc' as unknown as Uint8Array, 0)).toThrow(TypeError)
    expect(() => addon.crc32(new Uint16Array(4) as unknown as Uint8Array, 0)).toThrow(/crc32: expected/)
    expect(() => (addon.crc32 as (d: Uint8Array) => number)(new Uint8Array(4))).toThrow(/crc32: expected/)
  })

  it('computes the ICRCs once the helper loads (when the CPU has PCLMULQDQ); RDMA_SESSION_SOFTROCE_NATIVE_CRC=off keeps zlib, with the same ICRC', () => {
    const ip = { family: 4 as const, src: '10.0.0.1', dst: '10.0.0.2', srcPort: 49152, dstPort: 4791, ipId: 0, df: true }
    const packet = data.subarray(0, 12 + 4096)
    resetSockoptAddon()
    loadSockoptAddon()
    expect(crc32Engine()).toBe(addon.crc32Accelerated ? 'native' : 'zlib')
    const withHelper = icrc(packet, ip)
    process.env[NATIVE_CRC_DISABLE_ENV] = 'off'
    resetSockoptAddon()
    loadSockoptAddon()
    expect(crc32Engine()).toBe('zlib')
    expect(icrc(packet, ip)).toBe(withHelper)
  })
})
