/** Per-QP keys derived from the session secret (HKDF-SHA256): one key per direction of each QP pair and epoch. */
import { hkdfSync, randomBytes } from 'node:crypto'

export const SESSION_SECRET_BYTES = 32

export function newSessionSecret(): Uint8Array {
  return new Uint8Array(randomBytes(SESSION_SECRET_BYTES))
}

/** The key for packets sent by QP `fromQpn` to QP `toQpn` in `epoch`. Both sides derive the same key. */
export function deriveQpKey(secret: Uint8Array, sessionId: string, fromQpn: number, toQpn: number, epoch: number): Uint8Array {
  const info = `rdma-session/v1 qp ${fromQpn}>${toQpn} epoch ${epoch}`
  return new Uint8Array(hkdfSync('sha256', secret, Buffer.from(sessionId, 'utf8'), info, 32))
}
