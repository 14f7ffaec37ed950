/** Join tokens and the QP creation limiter, without a provider. */
import { describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { QpCreationLimiter, createJoinToken, splitJoinToken, verifyJoinToken } from '../../src/index.js'
import { joinQpSecret } from '../../src/control/join-token.js'

const secret = new Uint8Array(randomBytes(32))
const sid = 'ab'.repeat(16)

function reason(f: () => unknown): unknown {
  try {
    f()
  } catch (err) {
    expect((err as { code: string }).code).toBe('ERR_JOIN_TOKEN')
    return (err as { details: { reason: string } }).details.reason
  }
  throw new Error('expected ERR_JOIN_TOKEN')
}

describe('join tokens', () => {
  it('a token verifies for its session and carries its claims; the key part is what the peer derives', () => {
    const token = createJoinToken(secret, sid, { scope: ['add-qps', 'rekey'], ttlMs: 5000, maxQps: 3 }, 1000)
    const { presented, qpSecret, claims } = splitJoinToken(token)
    expect(presented.startsWith('v4.local.')).toBe(true)
    expect(presented.split('.')).toHaveLength(4)
    expect(token.startsWith(`${presented}#`)).toBe(true)
    const checked = verifyJoinToken(secret, sid, presented, 2000)
    expect(checked).toMatchObject({ sid, exp: 6000, scope: ['add-qps', 'rekey'], maxQps: 3 })
    expect(Buffer.from(qpSecret).equals(Buffer.from(joinQpSecret(secret, sid, claims.jti)))).toBe(true)
    expect(Buffer.from(qpSecret).equals(Buffer.from(secret))).toBe(false)
  })

  it('expired, forged, for another session, or with a different secret: ERR_JOIN_TOKEN with the reason', () => {
    const { presented } = splitJoinToken(createJoinToken(secret, sid, { ttlMs: 10 }, 1000))
    expect(reason(() => verifyJoinToken(secret, sid, presented, 1010))).toBe('expired')
    expect(reason(() => verifyJoinToken(new Uint8Array(randomBytes(32)), sid, presented, 1000))).toBe('forged')
    expect(reason(() => verifyJoinToken(secret, 'cd'.repeat(16), presented, 1000))).toBe('forged')
    const [v, purpose, payload, footer] = presented.split('.')
    const widened = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(footer!, 'base64url').toString()), maxQps: 65536 })).toString('base64url')
    expect(reason(() => verifyJoinToken(secret, sid, `${v}.${purpose}.${payload}.${widened}`, 1000))).toBe('forged')
    const flipped = Buffer.from(payload!, 'base64url')
    flipped[40]! ^= 1
    expect(reason(() => verifyJoinToken(secret, sid, `${v}.${purpose}.${flipped.toString('base64url')}.${footer}`, 1000))).toBe('forged')
    expect(reason(() => verifyJoinToken(secret, sid, 'nonsense', 1000))).toBe('malformed')
    expect(reason(() => verifyJoinToken(secret, sid, `v2.local.${payload}.${footer}`, 1000))).toBe('malformed')
    expect(reason(() => splitJoinToken('rsj1.a.b.c'))).toBe('malformed')
  })

  it('rejects unknown scopes and silly lifetimes when made', () => {
    expect(() => createJoinToken(secret, sid, { scope: ['everything' as never] })).toThrow(/unknown join scope/)
    expect(() => createJoinToken(secret, sid, { ttlMs: 0 })).toThrow(/ttlMs/)
  })
})

describe('QP creation limiter', () => {
  it('allows a burst, then refuses with ERR_RATE_LIMIT without taking tokens, per peer', () => {
    const l = new QpCreationLimiter({ qpsPerSecond: 0.001, burst: 10 })
    l.admit('a', 6)
    expect(() => l.admit('a', 5)).toThrow(expect.objectContaining({ code: 'ERR_RATE_LIMIT' }))
    l.admit('a', 4)
    l.admit('b', 10)
    expect(() => l.admit('b', 1)).toThrow(/retry later/)
  })
})
