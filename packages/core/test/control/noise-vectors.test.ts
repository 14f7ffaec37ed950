/**
 * The Noise implementation the control plane runs (noise-handshake) against
 * the published cacophony test vectors of its two protocols,
 * Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b and Noise_XX_25519_ChaChaPoly_BLAKE2b:
 * with the vectors' static and ephemeral keys, prologue and PSK, every
 * handshake message, the handshake hash and the transport messages after it
 * (noise-handshake's CipherState under the split keys) match byte for byte.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import NoiseState, { type NoiseKeyPair } from 'noise-handshake'
import CipherState from 'noise-handshake/cipher.js'
import sodium from 'sodium-universal'

interface Vector {
  readonly protocol_name: string
  readonly init_prologue: string
  readonly init_psks?: string[]
  readonly init_static?: string
  readonly init_ephemeral: string
  readonly resp_prologue: string
  readonly resp_psks?: string[]
  readonly resp_static?: string
  readonly resp_ephemeral: string
  readonly handshake_hash: string
  readonly messages: { payload: string; ciphertext: string }[]
}
const { vectors } = JSON.parse(readFileSync(new URL('../fixtures/noise-vectors.json', import.meta.url), 'utf8')) as { vectors: Vector[] }
const hex = (s: string): Buffer => Buffer.from(s, 'hex')

function keyPair(secret: string): NoiseKeyPair {
  const publicKey = Buffer.alloc(32)
  sodium.crypto_scalarmult_base(publicKey, hex(secret))
  return { publicKey, secretKey: hex(secret) }
}

function party(v: Vector, initiator: boolean): NoiseState {
  const pattern = v.protocol_name.split('_')[1] as 'NNpsk0' | 'XX'
  const s = initiator ? v.init_static : v.resp_static
  const psks = initiator ? v.init_psks : v.resp_psks
  const noise = new NoiseState(pattern, initiator, s === undefined ? null : keyPair(s), psks === undefined ? {} : { psk: hex(psks[0]!) })
  noise.initialise(hex(initiator ? v.init_prologue : v.resp_prologue))
  noise.e = keyPair(initiator ? v.init_ephemeral : v.resp_ephemeral)
  return noise
}

describe('Noise published vectors (cacophony) through noise-handshake', () => {
  it('has the vectors of both protocols the control plane uses', () => {
    expect(vectors.map((v) => v.protocol_name).sort()).toEqual(['Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b', 'Noise_XX_25519_ChaChaPoly_BLAKE2b'])
  })

  for (const v of vectors) {
    it(`${v.protocol_name}: handshake messages, handshake hash and transport messages match`, () => {
      const init = party(v, true)
      const resp = party(v, false)
      let i = 0
      for (; !init.complete || !resp.complete; i++) {
        const [from, to] = i % 2 === 0 ? [init, resp] : [resp, init]
        const m = v.messages[i]!
        const sent = Buffer.from(from.send(hex(m.payload)))
        expect(sent.toString('hex'), `handshake message ${i}`).toBe(m.ciphertext)
        expect(Buffer.from(to.recv(sent)).toString('hex')).toBe(m.payload)
      }
      expect(Buffer.from(init.hash!).toString('hex')).toBe(v.handshake_hash)
      expect(Buffer.from(resp.hash!).toString('hex')).toBe(v.handshake_hash)
      const ciphers = { init: { tx: new CipherState(init.tx!), rx: new CipherState(init.rx!) }, resp: { tx: new CipherState(resp.tx!), rx: new CipherState(resp.rx!) } }
      const transport = v.messages.slice(i)
      expect(transport.length).toBeGreaterThan(0)
      transport.forEach((m, k) => {
        const [from, to] = (i + k) % 2 === 0 ? [ciphers.init, ciphers.resp] : [ciphers.resp, ciphers.init]
        const sealed = Buffer.from(from.tx.encrypt(hex(m.payload)))
        expect(sealed.toString('hex'), `transport message ${i + k}`).toBe(m.ciphertext)
        expect(Buffer.from(to.rx.decrypt(sealed)).toString('hex')).toBe(m.payload)
      })
    })
  }
})
