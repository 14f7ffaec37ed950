/**
 * The keys the Noise handshake takes, from the SDK's credentials: Ed25519
 * identities become X25519 static keys by libsodium's standard birational map
 * (crypto_sign_ed25519_*_to_curve25519, as Signal and WireGuard tooling do), so
 * the handshake is plain Noise_XX_25519; a pre-shared key of any length (at
 * least 32 bytes) becomes the 32-byte Noise PSK by HKDF-SHA256, bound to its id.
 */
import { hkdfSync, type KeyObject } from 'node:crypto'
import sodium from 'sodium-universal'
import type { NoiseKeyPair } from 'noise-handshake'
import { AuthError } from '../errors.js'

/** The X25519 static key pair of an Ed25519 identity. */
export function staticKeyPair(identity: KeyObject): NoiseKeyPair {
  const jwk = identity.export({ format: 'jwk' })
  const ed = Buffer.concat([Buffer.from(String(jwk.d), 'base64url'), Buffer.from(String(jwk.x), 'base64url')])
  const secretKey = Buffer.alloc(32)
  const publicKey = Buffer.alloc(32)
  sodium.crypto_sign_ed25519_sk_to_curve25519(secretKey, ed)
  sodium.crypto_scalarmult_base(publicKey, secretKey)
  ed.fill(0)
  return { publicKey, secretKey }
}

/** The X25519 public key (hex) of an Ed25519 public key id (base64url); null for a point that does not map. */
function x25519Of(ed25519Id: string): string | null {
  const out = Buffer.alloc(32)
  try {
    sodium.crypto_sign_ed25519_pk_to_curve25519(out, Buffer.from(ed25519Id, 'base64url'))
  } catch {
    return null
  }
  return out.toString('hex')
}

/**
 * The peer's Ed25519 id, checked: `claimed` (the raw Ed25519 public key its handshake payload names)
 * must map to the X25519 static key its handshake proved, and be in `trusted`. AuthError otherwise.
 */
export function peerIdentity(staticKey: Uint8Array | null, claimed: Uint8Array, trusted: ReadonlySet<string>, who: 'server' | 'client'): string {
  const id = Buffer.from(claimed).toString('base64url')
  if (staticKey === null || claimed.length !== 32 || x25519Of(id) !== Buffer.from(staticKey).toString('hex')) {
    throw new AuthError(`the ${who} identity does not match the static key its handshake proved`)
  }
  if (!trusted.has(id)) throw new AuthError(who === 'server' ? `unknown server identity ${id}: it is not in auth.trusted` : `unknown identity ${id}: the server does not trust this public key`, { identity: id })
  return id
}

/** The 32-byte Noise PSK of a pre-shared key (raw, or a passphrase's scrypt key) and its id. */
export function noisePsk(key: Buffer, pskId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `rdma-session noise psk ${pskId}`, 32))
}
