/**
 * Passphrases as control-plane keys: a passphrase (human-chosen, guessable) is
 * stretched with scrypt, memory-hard, under a salt each listener draws at
 * start and sends in its welcome. The handshake then uses the stretched key as
 * a pre-shared key, so each guess an attacker tests offline against a
 * recorded handshake costs one scrypt (32 MiB, tens of milliseconds) instead
 * of one HMAC.
 */
import { randomBytes, scrypt } from 'node:crypto'
import { InvalidArgumentError } from '../errors.js'

/** scrypt cost: N = 2^15, r = 8, p = 1 (32 MiB per evaluation), 32-byte key. */
export const PASSPHRASE_KDF = { name: 'scrypt', N: 1 << 15, r: 8, p: 1, keyBytes: 32, saltBytes: 16 } as const
/** Shortest passphrase accepted. */
export const MIN_PASSPHRASE_CHARS = 8

/** A listener's stretched passphrase: the salt it sends, the key it uses. */
export interface StretchedPassphrase {
  readonly salt: Buffer
  readonly key: Buffer
}

/** Checks a passphrase and returns its UTF-8 bytes. */
export function passphraseBytes(passphrase: unknown): Buffer {
  if (typeof passphrase !== 'string') throw new InvalidArgumentError('passphrase must be a string')
  if ([...passphrase].length < MIN_PASSPHRASE_CHARS) throw new InvalidArgumentError(`a passphrase needs at least ${MIN_PASSPHRASE_CHARS} characters (prefer psk: 32 random bytes)`)
  return Buffer.from(passphrase.normalize('NFC'), 'utf8')
}

/** scrypt(passphrase, salt) with PASSPHRASE_KDF's cost. */
export function stretchPassphrase(passphrase: Buffer, salt: Buffer): Promise<Buffer> {
  const { N, r, p, keyBytes } = PASSPHRASE_KDF
  return new Promise((resolve, reject) => {
    scrypt(passphrase, salt, keyBytes, { N, r, p, maxmem: 256 * N * r }, (err, key) => (err === null ? resolve(key) : reject(err)))
  })
}

/** What a listener does once at start: draw its salt and stretch its passphrase. */
export async function stretchForListener(passphrase: Buffer): Promise<StretchedPassphrase> {
  const salt = randomBytes(PASSPHRASE_KDF.saltBytes)
  return { salt, key: await stretchPassphrase(passphrase, salt) }
}

/** Client side: stretched keys by salt, so reconnecting to the same listener costs no second scrypt. */
export class PassphraseKeys {
  readonly #byListener = new Map<string, Promise<Buffer>>()
  constructor(private readonly passphrase: Buffer) {}

  keyFor(salt: Buffer): Promise<Buffer> {
    const id = salt.toString('hex')
    let key = this.#byListener.get(id)
    if (key === undefined) {
      if (this.#byListener.size >= 16) this.#byListener.delete(this.#byListener.keys().next().value!)
      key = stretchPassphrase(this.passphrase, salt)
      this.#byListener.set(id, key)
    }
    return key
  }
}
