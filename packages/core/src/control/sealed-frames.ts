/** AES-256-GCM sealing of post-handshake frames (node:crypto): a per-direction key and a 4-byte IV prefix with an implicit 64-bit counter, so frames cannot be forged, replayed, reordered or dropped unnoticed. */
import { createCipheriv, createDecipheriv } from 'node:crypto'

const TAG_BYTES = 16
const AAD = Buffer.from('rdma-session ctl v1 frame')

function nonce(iv: Buffer, counter: bigint): Buffer {
  const n = Buffer.alloc(12)
  iv.copy(n, 0, 0, 4)
  n.writeBigUInt64BE(counter, 4)
  return n
}

export class FrameSealer {
  #counter = 0n
  constructor(private readonly key: Buffer, private readonly iv: Buffer) {}

  seal(plaintext: Buffer): Buffer {
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce(this.iv, this.#counter++))
    cipher.setAAD(AAD)
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
    return Buffer.concat([body, cipher.getAuthTag()])
  }
}

export class FrameOpener {
  #counter = 0n
  constructor(private readonly key: Buffer, private readonly iv: Buffer) {}

  /** The plaintext, or null when the frame does not authenticate (forged, replayed, out of order). */
  open(frame: Buffer): Buffer | null {
    const out = this.#tryOpen(frame, this.#counter)
    if (out !== null) this.#counter++
    return out
  }

  /** True when `frame` (which did not open) opens as the frame after the expected one: a sealed frame was lost or altered, the stream is broken. */
  opensAfterGap(frame: Buffer): boolean {
    return this.#tryOpen(frame, this.#counter + 1n) !== null
  }

  #tryOpen(frame: Buffer, counter: bigint): Buffer | null {
    if (frame.length < TAG_BYTES) return null
    const decipher = createDecipheriv('aes-256-gcm', this.key, nonce(this.iv, counter))
    decipher.setAAD(AAD)
    decipher.setAuthTag(frame.subarray(frame.length - TAG_BYTES))
    try {
      return Buffer.concat([decipher.update(frame.subarray(0, frame.length - TAG_BYTES)), decipher.final()])
    } catch {
      return null
    }
  }
}
