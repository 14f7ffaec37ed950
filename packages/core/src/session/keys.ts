/** Per-QP keys derived from the session secret (HKDF-SHA256): one key per direction of each QP pair and epoch. */
import { createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto'

export const SESSION_SECRET_BYTES = 32

export function newSessionSecret(): Uint8Array {
  return new Uint8Array(randomBytes(SESSION_SECRET_BYTES))
}

/** The key for packets sent by QP `fromQpn` to QP `toQpn` in `epoch`. Both sides derive the same key. */
export function deriveQpKey(secret: Uint8Array, sessionId: string, fromQpn: number, toQpn: number, epoch: number): Uint8Array {
  const info = `rdma-session/v1 qp ${fromQpn}>${toQpn} epoch ${epoch}`
  return new Uint8Array(hkdfSync('sha256', secretKey(secret), Buffer.from(sessionId, 'utf8'), info, 32))
}

// hkdfSync imports raw key bytes on every call; a session derives two keys per QP, so its
// secret is imported once (the KeyObject lives as long as the secret's bytes do).
const imported = new WeakMap<Uint8Array, KeyObject>()
function secretKey(secret: Uint8Array): KeyObject {
  let key = imported.get(secret)
  if (key === undefined) {
    key = createSecretKey(secret)
    imported.set(secret, key)
  }
  return key
}
