/**
 * Record protection after the handshake: Noise transport messages, made by
 * noise-handshake's CipherState (ChaCha20-Poly1305 under the handshake's split
 * keys, one per direction, with Noise's counter nonce), so frames cannot be
 * forged, replayed, reordered or dropped unnoticed. A Noise message holds at
 * most 65535 bytes; a larger frame is a run of full-size messages and a
 * shorter last one, each with one byte of associated data saying whether more
 * follow, so a frame cut at a message boundary does not authenticate.
 */
import CipherState from 'noise-handshake/cipher.js'
import { MAX_FRAME_BYTES } from './frames.js'

const NOISE_MAX = 65535
const TAG_BYTES = 16
const CHUNK = NOISE_MAX - TAG_BYTES
const MORE = Buffer.from([0])
const LAST = Buffer.from([1])
/** Most Noise messages one frame of MAX_FRAME_BYTES takes. */
const MAX_CHUNKS = Math.ceil(MAX_FRAME_BYTES / CHUNK)
/** Largest sealed frame: MAX_FRAME_BYTES of plaintext and a tag per message. */
export const MAX_SEALED_BYTES = MAX_FRAME_BYTES + MAX_CHUNKS * TAG_BYTES
/** noise-handshake writes the nonce as 32 bits: a connection is done before it would wrap (the channel resumes on a new handshake). */
const NONCE_LIMIT = 2 ** 32 - 1 - MAX_CHUNKS

export class NonceExhaustedError extends Error {}

export class FrameSealer {
  readonly #cipher: CipherState
  constructor(key: Uint8Array) {
    this.#cipher = new CipherState(key)
  }

  seal(plaintext: Buffer): Buffer {
    if (this.#cipher.nonce >= NONCE_LIMIT) throw new NonceExhaustedError('this connection has sealed as many frames as its keys allow')
    const out: Uint8Array[] = []
    let at = 0
    do {
      const end = Math.min(at + CHUNK, plaintext.length)
      out.push(this.#cipher.encrypt(plaintext.subarray(at, end), end === plaintext.length ? LAST : MORE))
      at = end
    } while (at < plaintext.length)
    return Buffer.concat(out)
  }
}

export class FrameOpener {
  readonly #cipher: CipherState
  constructor(key: Uint8Array) {
    this.#cipher = new CipherState(key)
  }

  /** The plaintext, or null when the frame does not authenticate (forged, replayed, out of order, cut). */
  open(frame: Buffer): Buffer | null {
    const start = this.#cipher.nonce
    const out = this.#tryOpen(frame)
    if (out === null) this.#cipher.setNonce(start)
    return out
  }

  /** True when `frame` (which did not open) opens after skipping the messages of one or more lost frames: the stream is broken. */
  opensAfterGap(frame: Buffer): boolean {
    const start = this.#cipher.nonce
    try {
      for (let skip = 1; skip <= MAX_CHUNKS; skip++) {
        this.#cipher.setNonce(start + skip)
        if (this.#tryOpen(frame.subarray(0, Math.min(frame.length, NOISE_MAX)), true) !== null) return true
      }
      return false
    } finally {
      this.#cipher.setNonce(start)
    }
  }

  /** Opens the messages of one frame in order; `firstOnly` checks just the first (either flag of associated data). */
  #tryOpen(frame: Buffer, firstOnly = false): Buffer | null {
    if (frame.length < TAG_BYTES || frame.length > MAX_SEALED_BYTES) return null
    const parts: Uint8Array[] = []
    try {
      for (let at = 0; at < frame.length; at += NOISE_MAX) {
        const piece = frame.subarray(at, Math.min(at + NOISE_MAX, frame.length))
        if (piece.length < TAG_BYTES) return null
        const last = at + NOISE_MAX >= frame.length
        if (firstOnly) return Buffer.from(this.#openEither(piece))
        parts.push(this.#cipher.decrypt(piece, last ? LAST : MORE))
      }
    } catch {
      return null
    }
    return Buffer.concat(parts)
  }

  #openEither(piece: Uint8Array): Uint8Array {
    const n = this.#cipher.nonce
    try {
      return this.#cipher.decrypt(piece, LAST)
    } catch {
      this.#cipher.setNonce(n)
      return this.#cipher.decrypt(piece, MORE)
    }
  }
}
