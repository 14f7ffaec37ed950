/**
 * AES-256-GCM for one QP's packets (node:crypto). Every packet the QP sends is
 * sealed with its tx key: payload encrypted, header authenticated. The 96-bit
 * nonce is epoch (32 bits) | sender QPN (24 bits) | per-key counter (40 bits),
 * so it never repeats under one key. A rekey keeps the previous rx key for a
 * grace period so packets already in flight under the old epoch still open.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto'
import { QpAttributeError, type QpEncryption } from '@rdma-session/provider-interface'
import type { DropReason } from './fabric-stats.js'
import { authenticatedHeader, type Packet } from './packet.js'
import { performance } from 'node:perf_hooks'

const TAG_BYTES = 16
const MAX_COUNTER = 2 ** 40

export class PacketCipher {
  #txKey: Buffer
  #txEpoch: number
  #txCounter = 0
  #rxKey: Buffer
  #rxEpoch: number
  #oldRxKey: Buffer | null = null
  #oldRxEpoch = -1
  #oldRxUntil = 0

  constructor(
    encryption: QpEncryption,
    /** The sending QP's number, part of every nonce. */
    private readonly qpn: number,
  ) {
    this.#txKey = Buffer.from(encryption.txKey)
    this.#rxKey = Buffer.from(encryption.rxKey)
    this.#txEpoch = this.#rxEpoch = encryption.epoch >>> 0
  }

  get epoch(): number {
    return this.#txEpoch
  }

  /** Switches to the keys of a higher epoch; the old rx key stays valid for `graceMs`. */
  rekey(encryption: QpEncryption, graceMs: number): void {
    const epoch = encryption.epoch >>> 0
    if (epoch <= this.#txEpoch) throw new QpAttributeError('encryption', `a rekey needs a higher epoch than ${this.#txEpoch}, got ${encryption.epoch}`)
    this.#oldRxKey = this.#rxKey
    this.#oldRxEpoch = this.#rxEpoch
    this.#oldRxUntil = performance.now() + graceMs
    this.#txKey = Buffer.from(encryption.txKey)
    this.#rxKey = Buffer.from(encryption.rxKey)
    this.#txEpoch = this.#rxEpoch = epoch
    this.#txCounter = 0
  }

  /** Encrypts `packet` in place. Returns false when this key's nonces are used up (rekey first). */
  seal(packet: Packet): boolean {
    if (this.#txCounter >= MAX_COUNTER) return false
    const nonce = Buffer.allocUnsafe(12)
    nonce.writeUInt32BE(this.#txEpoch, 0)
    nonce.writeUIntBE(this.qpn, 4, 3)
    nonce.writeUIntBE(this.#txCounter++, 7, 5)
    packet.epoch = this.#txEpoch
    packet.nonce = nonce
    packet.sealed = true
    const cipher = createCipheriv('aes-256-gcm', this.#txKey, nonce)
    cipher.setAAD(authenticatedHeader(packet))
    const body = packet.payload.length > 0 ? cipher.update(packet.payload) : null
    const tail = cipher.final()
    const tag = cipher.getAuthTag()
    packet.payload = body === null ? Buffer.concat([tail, tag]) : Buffer.concat([body, tail, tag])
    return true
  }

  /** The plaintext payload of `packet`, or why it cannot be opened. */
  open(packet: Packet): Uint8Array | DropReason {
    if (!packet.sealed || packet.nonce === null) return 'encryptionMismatch'
    let key: Buffer
    if (packet.epoch === this.#rxEpoch) key = this.#rxKey
    else if (packet.epoch === this.#oldRxEpoch && this.#oldRxKey !== null && performance.now() < this.#oldRxUntil) key = this.#oldRxKey
    else return 'unknownEpoch'
    const sealed = packet.payload
    if (sealed.length < TAG_BYTES) return 'decryptFailure'
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, packet.nonce)
      decipher.setAAD(authenticatedHeader(packet))
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
      const body = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES))
      const tail = decipher.final()
      return tail.length === 0 ? body : Buffer.concat([body, tail])
    } catch {
      return 'decryptFailure'
    }
  }
}
