/**
 * The PASETO v4.local implementation join tokens use (paseto-ts) against the
 * published PASETO test vectors (paseto-standard/test-vectors, v4.json): with
 * the vector's nonce it makes the vector's token, it opens each good token to
 * the vector's payload, and each token the vectors mark as bad is refused by
 * it or (non-canonical base64: 4-F-4, 4-F-5) by the join-token layer's
 * canonical-encoding check that runs before it.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { decrypt, encrypt } from 'paseto-ts/v4'
import { isCanonicalPasetoToken } from '../../src/control/join-token.js'

interface Vector {
  readonly name: string
  readonly 'expect-fail': boolean
  readonly key: string
  readonly nonce: string
  readonly token: string
  readonly payload: string | null
  readonly footer: string
  readonly 'implicit-assertion': string
}
const { tests } = JSON.parse(readFileSync(new URL('../fixtures/paseto-v4-local-vectors.json', import.meta.url), 'utf8')) as { tests: Vector[] }
const key = (t: Vector): string => `k4.local.${Buffer.from(t.key, 'hex').toString('base64url')}`
const opts = (t: Vector) => ({ assertion: t['implicit-assertion'], validatePayload: false })

describe('PASETO v4.local published vectors (paseto-ts)', () => {
  it('covers the good and the bad vectors', () => {
    expect(tests.filter((t) => !t['expect-fail']).length).toBeGreaterThanOrEqual(9)
    expect(tests.filter((t) => t['expect-fail']).length).toBeGreaterThanOrEqual(4)
  })

  for (const t of tests.filter((v) => !v['expect-fail'])) {
    it(`${t.name}: encrypts to the vector's token and decrypts to its payload`, () => {
      const nonce = Buffer.from(t.nonce, 'hex')
      const token = encrypt(key(t), t.payload!, { ...opts(t), footer: t.footer, addIat: false, addExp: false, getRandomValues: (a: Uint8Array) => (a.set(nonce.subarray(0, a.length)), a) })
      expect(token).toBe(t.token)
      expect(isCanonicalPasetoToken(t.token)).toBe(true)
      const { payload } = decrypt(key(t), t.token, opts(t))
      expect(payload).toEqual(JSON.parse(t.payload!))
    })
  }

  for (const t of tests.filter((v) => v['expect-fail'])) {
    it(`${t.name}: is refused`, () => {
      const opens = (): boolean => {
        try {
          decrypt(key(t), t.token, opts(t))
          return true
        } catch {
          return false
        }
      }
      expect(isCanonicalPasetoToken(t.token) && opens()).toBe(false)
    })
  }
})
