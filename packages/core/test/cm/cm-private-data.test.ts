// rdma-session's rdma_cm private data: round trips, plain peers' data, malformed messages (each
// refused with a stable code, never a throw), and CM join tokens (forged, expired, budget).
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  CM_JOIN_TOKEN_BYTES, CM_REQ_PRIVATE_DATA_BYTES, CmRefusal, createCmJoinToken, decodeCmPrivateData, encodeCmPrivateData, isCmUrl, parseCmUrl,
  verifyCmJoinToken, type CmPrivateMessage,
} from '../../src/index.js'
import { seededRandom } from '@rdma-session/provider-interface'

const sessionId = 'a1'.repeat(16)
const secret = new Uint8Array(32).fill(7)

describe('rdma_cm private data', () => {
  it('round-trips every message, within the 56 bytes a REQ carries, with zero padding as the CM pads', () => {
    const token = createCmJoinToken(secret, sessionId)
    const messages: CmPrivateMessage[] = [
      { kind: 'open', trafficClass: 0xb8, mtu: 4096 },
      { kind: 'join', sessionId, token },
      { kind: 'accept', sessionId, token },
      { kind: 'refuse', code: CmRefusal.TOKEN_EXPIRED },
    ]
    for (const m of messages) {
      const b = encodeCmPrivateData(m)
      expect(b.length).toBeLessThanOrEqual(CM_REQ_PRIVATE_DATA_BYTES)
      const padded = new Uint8Array(CM_REQ_PRIVATE_DATA_BYTES)
      padded.set(b)
      expect(decodeCmPrivateData(b)).toEqual({ plain: false, message: m })
      expect(decodeCmPrivateData(padded)).toEqual({ plain: false, message: m })
    }
  })

  it("treats data without the magic as a plain peer's", () => {
    expect(decodeCmPrivateData(new Uint8Array(0))).toEqual({ plain: true })
    expect(decodeCmPrivateData(Buffer.from('rping'))).toEqual({ plain: true })
    expect(decodeCmPrivateData(new Uint8Array(56))).toEqual({ plain: true })
  })

  it('refuses malformed messages with stable codes', () => {
    const join = encodeCmPrivateData({ kind: 'join', sessionId, token: new Uint8Array(CM_JOIN_TOKEN_BYTES) })
    const cases: [Uint8Array, number][] = [
      [join.subarray(0, 6), CmRefusal.MALFORMED],
      [join.subarray(0, 40), CmRefusal.MALFORMED],
      [Uint8Array.from(join, (b, i) => (i === 4 ? 9 : b)), CmRefusal.VERSION],
      [Uint8Array.from(join, (b, i) => (i === 5 ? 99 : b)), CmRefusal.MALFORMED],
      [Uint8Array.from(join, (b, i) => (i === 6 ? 1 : b)), CmRefusal.MALFORMED],
      [Uint8Array.of(...join, 1), CmRefusal.MALFORMED],
      [Uint8Array.from(encodeCmPrivateData({ kind: 'open', trafficClass: 0, mtu: 1024 }), (b, i) => (i === 7 ? 6 : b)), CmRefusal.MALFORMED],
      [Uint8Array.from(encodeCmPrivateData({ kind: 'refuse', code: 1 }), (b, i) => (i === 6 ? 200 : b)), CmRefusal.MALFORMED],
    ]
    for (const [data, code] of cases) expect(decodeCmPrivateData(data)).toMatchObject({ plain: false, refusal: code })
  })

  it('never throws on random data that keeps the magic', () => {
    const rand = seededRandom(42)
    for (let i = 0; i < 20_000; i++) {
      const b = new Uint8Array(4 + Math.floor(rand() * 53))
      for (let j = 4; j < b.length; j++) b[j] = Math.floor(rand() * 256)
      b.set([0x52, 0x53, 0x43, 0x4d])
      if (rand() < 0.5 && b.length > 5) b[4] = 1
      const d = decodeCmPrivateData(b)
      expect(d.plain).toBe(false)
    }
  })

  it('encoding refuses what cannot be sent', () => {
    expect(() => encodeCmPrivateData({ kind: 'join', sessionId: 'nope', token: new Uint8Array(30) })).toThrow(TypeError)
    expect(() => encodeCmPrivateData({ kind: 'join', sessionId, token: new Uint8Array(29) })).toThrow(TypeError)
  })
})

describe('CM join tokens', () => {
  it('verify for their session only, with their budget and expiry', () => {
    const now = Date.now()
    const token = createCmJoinToken(secret, sessionId, { maxQps: 5, ttlMs: 60_000 }, now)
    const claims = verifyCmJoinToken(secret, sessionId, token, now)
    expect(claims).toMatchObject({ sid: sessionId, maxQps: 5, scope: ['add-qps'] })
    expect(claims.exp).toBeGreaterThanOrEqual(now + 60_000)
    expect(() => verifyCmJoinToken(secret, 'b2'.repeat(16), token, now)).toThrow(expect.objectContaining({ code: 'ERR_JOIN_TOKEN', details: expect.objectContaining({ reason: 'forged' }) }))
    expect(() => verifyCmJoinToken(randomBytes(32), sessionId, token, now)).toThrow(expect.objectContaining({ details: expect.objectContaining({ reason: 'forged' }) }))
    const tampered = Uint8Array.from(token, (b, i) => (i === 12 ? b ^ 0x80 : b))
    expect(() => verifyCmJoinToken(secret, sessionId, tampered, now)).toThrow(expect.objectContaining({ details: expect.objectContaining({ reason: 'forged' }) }))
    expect(() => verifyCmJoinToken(secret, sessionId, token, now + 61_000)).toThrow(expect.objectContaining({ details: expect.objectContaining({ reason: 'expired' }) }))
    expect(() => verifyCmJoinToken(secret, sessionId, token.subarray(1), now)).toThrow(expect.objectContaining({ details: expect.objectContaining({ reason: 'malformed' }) }))
    expect(() => createCmJoinToken(secret, sessionId, { maxQps: 70_000 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
  })
})

describe('rdma-cm URLs', () => {
  it('take an IP address and a port', () => {
    expect(parseCmUrl('rdma-cm://10.0.0.1:7471')).toEqual({ host: '10.0.0.1', port: 7471 })
    expect(parseCmUrl('rdma-cm://[fd00::1]:7471')).toEqual({ host: 'fd00::1', port: 7471 })
    expect(isCmUrl('rdma-cm://x')).toBe(true)
    expect(isCmUrl('ws://x')).toBe(false)
    for (const bad of ['rdma-cm://host:7471', 'rdma-cm://10.0.0.1', 'rdma-cm://10.0.0.1:0', 'rdma-cm://10.0.0.1:1/x', 'ws://10.0.0.1:1', '::']) {
      expect(() => parseCmUrl(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    }
  })
})
