import { describe, expect, it } from 'vitest'
import { deriveQpKey, normalizeParams, normalizeQos } from '../src/index.js'

describe('session parameters', () => {
  it('fills defaults and freezes', () => {
    const p = normalizeParams()
    expect(p.encryption, 'encrypted by default').toEqual({ suite: 'aes-256-gcm', required: true })
    expect(p.encapsulation).toEqual({ mtu: 1024, udpSourcePort: 0, dscp: 0, ecn: 0, hopLimit: 64 })
    expect(Object.isFrozen(p) && Object.isFrozen(p.encapsulation)).toBe(true)
  })
  it('reads encryption shorthands', () => {
    expect(normalizeParams({ encryption: 'aes-256-gcm' }).encryption).toEqual({ suite: 'aes-256-gcm', required: true })
    expect(normalizeParams({ encryption: { suite: 'aes-256-gcm', required: false } }).encryption.required).toBe(false)
    expect(normalizeParams({ encryption: 'preferred' }).encryption).toEqual({ suite: 'aes-256-gcm', required: false })
    expect(normalizeParams({ encryption: 'none' }).encryption).toEqual({ suite: 'none', required: false })
    expect(() => normalizeParams({ encryption: 'rot13' as never })).toThrow(/unknown encryption/)
  })
  it('rejects bad encapsulation with the field name', () => {
    expect(() => normalizeParams({ encapsulation: { mtu: 1500 as never } })).toThrow(/mtu/)
    expect(() => normalizeParams({ encapsulation: { dscp: 64 } })).toThrow(/dscp/)
    expect(() => normalizeParams({ encapsulation: { hopLimit: 0 } })).toThrow(/hopLimit/)
  })
})

describe('QoS', () => {
  it('normalizes with defaults and checks ranges', () => {
    expect(normalizeQos({}, 104)).toEqual({ className: 'default', serviceLevel: 0, trafficClass: 104, weight: 1, rateLimitBps: 0 })
    expect(normalizeQos({ class: 'bulk', weight: 10, serviceLevel: 3, rateLimit: '8Mbps' })).toMatchObject({ className: 'bulk', weight: 10, serviceLevel: 3, rateLimitBps: 1_000_000 })
    expect(() => normalizeQos({ serviceLevel: 16 })).toThrow(/serviceLevel/)
    expect(() => normalizeQos({ weight: 0 })).toThrow(/weight/)
  })
})

describe('per-QP keys', () => {
  it('differ per direction, QP and epoch, and agree on both sides', () => {
    const secret = new Uint8Array(32).fill(7)
    const ab = deriveQpKey(secret, 's1', 10, 20, 0)
    expect(ab).toHaveLength(32)
    expect(deriveQpKey(secret, 's1', 10, 20, 0)).toEqual(ab)
    expect(deriveQpKey(secret, 's1', 20, 10, 0)).not.toEqual(ab)
    expect(deriveQpKey(secret, 's1', 10, 20, 1)).not.toEqual(ab)
    expect(deriveQpKey(secret, 's2', 10, 20, 0)).not.toEqual(ab)
  })
})
