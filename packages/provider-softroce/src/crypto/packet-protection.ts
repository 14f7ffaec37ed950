/**
 * AEAD for one encrypted QP (AES-256-GCM, node:crypto), with a PSP-like header.
 *
 *   BTH (12, clear) | PSP header (16, clear) | ciphertext(ext headers | payload | pad) | tag (16) | ICRC (4)
 *
 * PSP header: next header 0x00, ext length 1, crypt offset 0, version byte 0x05
 * (PSP v1 = AES-GCM-256, V bit), SPI (4, big-endian) = key epoch, IV (8) = a
 * random 32-bit salt chosen when the tx key is installed followed by a 32-bit
 * packet counter, so an IV never repeats under one key. Nonce = SPI | IV. AAD =
 * the BTH (with byte 4, whose FECN/BECN bits the network may change, zeroed) and
 * the PSP header. The receiver demuxes by the clear BTH, picks the key by SPI
 * (current epoch, or the previous one during a rekey), rejects replays with a
 * window over the counter, and authenticates before anything is executed.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import type { QpEncryption } from '@rdma-session/provider-interface'
import type { DropReason } from '../rc/device-counters.js'
import { ReplayWindow } from './replay-window.js'

export const PSP_HEADER_BYTES = 16
export const TAG_BYTES = 16
/** BTH + PSP header + tag: what encryption adds around the plaintext, besides the ICRC. */
export const PROTECTION_OVERHEAD = PSP_HEADER_BYTES + TAG_BYTES
const BTH_BYTES = 12
const VERSION_BYTE = (1 << 2) | 1
const MAX_COUNTER = 0xffffffff

interface RxKey {
  readonly key: Buffer
  readonly epoch: number
  readonly window: ReplayWindow
  /** The sender's IV salt, learned from the first packet that authenticates. */
  salt: number
}

export class PacketProtection {
  #txKey: Buffer
  #txEpoch: number
  #txSalt: number
  #txCounter = 0
  #rx: RxKey
  #previousRx: RxKey | null = null
  readonly #windowSize: number
  readonly #aad = Buffer.alloc(BTH_BYTES + PSP_HEADER_BYTES)
  readonly #nonce = Buffer.alloc(12)

  constructor(encryption: QpEncryption, windowSize: number) {
    this.#windowSize = windowSize
    this.#txKey = Buffer.from(encryption.txKey)
    this.#txEpoch = encryption.epoch >>> 0
    this.#txSalt = randomSalt()
    this.#rx = { key: Buffer.from(encryption.rxKey), epoch: encryption.epoch >>> 0, window: new ReplayWindow(windowSize), salt: -1 }
  }

  get epoch(): number {
    return this.#txEpoch
  }

  /** Packets sealed under the current tx key. */
  get sealed(): number {
    return this.#txCounter
  }

  /**
   * Installs new keys. The tx side switches at once; the previous rx key stays
   * valid (with its replay window) until the next rekey, so packets already in
   * flight under it still open.
   */
  rekey(encryption: QpEncryption): void {
    const epoch = encryption.epoch >>> 0
    this.#txKey = Buffer.from(encryption.txKey)
    this.#txEpoch = epoch
    this.#txSalt = randomSalt()
    this.#txCounter = 0
    if (epoch !== this.#rx.epoch) this.#previousRx = this.#rx
    this.#rx = { key: Buffer.from(encryption.rxKey), epoch, window: new ReplayWindow(this.#windowSize), salt: -1 }
  }

  /**
   * Encrypts `parts` (ext headers, payload, pad: `length` bytes) for a packet
   * whose BTH is `bth`; returns [PSP header, ciphertext…, tag] to send after it.
   * Returns null when the counter is exhausted (the QP must be rekeyed).
   */
  seal(bth: Uint8Array, parts: readonly Uint8Array[]): Buffer[] | null {
    if (this.#txCounter >= MAX_COUNTER) return null
    const counter = ++this.#txCounter
    const hdr = Buffer.allocUnsafe(PSP_HEADER_BYTES)
    hdr[0] = 0
    hdr[1] = 1
    hdr[2] = 0
    hdr[3] = VERSION_BYTE
    hdr.writeUInt32BE(this.#txEpoch, 4)
    hdr.writeUInt32BE(this.#txSalt, 8)
    hdr.writeUInt32BE(counter, 12)
    this.#setAad(bth, hdr)
    this.#nonce.set(hdr.subarray(4, 16), 0)
    const cipher = createCipheriv('aes-256-gcm', this.#txKey, this.#nonce, { authTagLength: TAG_BYTES })
    cipher.setAAD(this.#aad)
    const out: Buffer[] = [hdr]
    for (const p of parts) if (p.length > 0) out.push(cipher.update(p))
    const fin = cipher.final()
    if (fin.length > 0) out.push(fin)
    out.push(cipher.getAuthTag())
    return out
  }

  /**
   * Authenticates and decrypts `body` (the UDP payload without its ICRC);
   * returns the plaintext (ext headers, payload, pad) or why the packet is dropped.
   */
  open(body: Uint8Array): Buffer | DropReason {
    if (body.length < BTH_BYTES + PROTECTION_OVERHEAD) return 'malformed'
    const hdr = body.subarray(BTH_BYTES, BTH_BYTES + PSP_HEADER_BYTES)
    const view = Buffer.from(hdr.buffer, hdr.byteOffset, hdr.byteLength)
    if (view[3] !== VERSION_BYTE) return 'malformed'
    const epoch = view.readUInt32BE(4)
    const salt = view.readUInt32BE(8)
    const counter = view.readUInt32BE(12)
    const rx = epoch === this.#rx.epoch ? this.#rx : this.#previousRx !== null && epoch === this.#previousRx.epoch ? this.#previousRx : null
    if (rx === null) return 'decryptFailure'
    if (rx.salt !== -1 && rx.salt !== salt) return 'replay'
    if (!rx.window.check(counter)) return 'replay'
    this.#setAad(body.subarray(0, BTH_BYTES), hdr)
    this.#nonce.set(hdr.subarray(4, 16), 0)
    const tagAt = body.length - TAG_BYTES
    const decipher = createDecipheriv('aes-256-gcm', rx.key, this.#nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(this.#aad)
    decipher.setAuthTag(body.subarray(tagAt))
    let plain: Buffer
    try {
      const a = decipher.update(body.subarray(BTH_BYTES + PSP_HEADER_BYTES, tagAt))
      const b = decipher.final()
      plain = b.length === 0 ? a : Buffer.concat([a, b])
    } catch {
      return 'decryptFailure'
    }
    if (rx.salt === -1) rx.salt = salt
    rx.window.mark(counter)
    return plain
  }

  #setAad(bth: Uint8Array, hdr: Uint8Array): void {
    this.#aad.set(bth.subarray(0, BTH_BYTES), 0)
    this.#aad[4] = 0
    this.#aad.set(hdr, BTH_BYTES)
  }
}

function randomSalt(): number {
  return randomBytes(4).readUInt32BE(0)
}
