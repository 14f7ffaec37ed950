/**
 * Control-plane credentials: a pre-shared key (at least 32 bytes of key
 * material), a passphrase (stretched with scrypt under a per-listener salt),
 * or Ed25519 identities with a list of trusted peer keys (node:crypto KeyObjects).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { InvalidArgumentError } from '../errors.js'
import { PassphraseKeys, passphraseBytes, stretchForListener, type StretchedPassphrase } from './passphrase.js'

/** Raw key material: bytes, or a string (UTF-8). At least 32 bytes: use 32 random bytes (a passphrase goes in `passphrase`). */
export type KeyMaterial = Uint8Array | string

/** A private key: a KeyObject or PEM text. */
export type PrivateKeyInput = KeyObject | string
/** A public key: a KeyObject, PEM text, 32 raw bytes, or the 43-character base64url form `publicKeyId()` prints. */
export type PublicKeyInput = KeyObject | string | Uint8Array

export interface PskAuth {
  readonly psk: KeyMaterial
  /** Names the key (both sides must agree); default 'default'. */
  readonly pskId?: string
}

/** A human-chosen secret: both sides give the same passphrase; it is stretched with scrypt under the listener's salt. */
export interface PassphraseAuth {
  readonly passphrase: string
  /** Names the passphrase (both sides must agree); default 'default'. */
  readonly pskId?: string
}

export interface IdentityAuth {
  /** This side's Ed25519 private key. */
  readonly identity: PrivateKeyInput
  /** Peer public keys this side accepts. */
  readonly trusted: readonly PublicKeyInput[]
}

/** What a client authenticates with: exactly one method. */
export type ClientAuth = PskAuth | PassphraseAuth | IdentityAuth

/** What a server accepts: a pre-shared key or a passphrase, Ed25519 identities, or both. */
export interface ServerAuth {
  readonly psk?: KeyMaterial
  /** Instead of psk: a passphrase, stretched with scrypt under a salt this listener draws at start. */
  readonly passphrase?: string
  readonly pskId?: string
  readonly identity?: PrivateKeyInput
  readonly trusted?: readonly PublicKeyInput[]
}

/** Credentials after checking, as the handshake uses them. */
export interface NormalizedAuth {
  /** A raw pre-shared key (at least MIN_PSK_BYTES). */
  readonly psk: Buffer | null
  /** Client with a passphrase: its stretched keys by listener salt. */
  readonly passphrase: PassphraseKeys | null
  /** Server with a passphrase: its bytes, until the listener stretches it (`withListenerKey`). */
  readonly serverPassphrase: Buffer | null
  /** Server with a passphrase: the listener's salt and stretched key. */
  readonly listenerKey: StretchedPassphrase | null
  readonly pskId: string
  readonly identity: KeyObject | null
  /** base64url of our raw Ed25519 public key. */
  readonly identityId: string | null
  /** base64url raw public keys we accept. */
  readonly trusted: ReadonlySet<string>
}

/** Least key material a raw pre-shared key may have; shorter secrets go through `passphrase` (scrypt). */
export const MIN_PSK_BYTES = 32
const PSK_ID = /^[A-Za-z0-9_.:@-]{1,64}$/

/** A new Ed25519 identity. Give `publicKey` (or `publicKeyId(publicKey)`) to peers that should trust it. */
export function generateIdentity(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ed25519')
}

/** The base64url form of an Ed25519 public key's 32 raw bytes: how the handshake names identities. */
export function publicKeyId(key: PublicKeyInput | PrivateKeyInput): string {
  return rawPublicKey(key)
}

function rawPublicKey(input: PublicKeyInput | PrivateKeyInput): string {
  let key: KeyObject
  if (input instanceof Uint8Array) {
    if (input.length !== 32) throw new InvalidArgumentError(`a raw Ed25519 public key has 32 bytes, got ${input.length}`)
    return Buffer.from(input).toString('base64url')
  }
  if (typeof input === 'string' && /^[A-Za-z0-9_-]{43}$/.test(input)) return input
  try {
    key = typeof input === 'string' ? (input.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(input)) : createPublicKey(input)) : input.type === 'private' ? createPublicKey(input) : input
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the key: ${(err as Error).message}; pass a KeyObject, PEM text or the 43-character id`)
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new InvalidArgumentError(`identities are Ed25519 keys, got ${String(key.asymmetricKeyType)}`)
  const jwk = key.export({ format: 'jwk' })
  return String(jwk.x)
}

function privateKey(input: PrivateKeyInput): KeyObject {
  let key: KeyObject
  try {
    key = typeof input === 'string' ? createPrivateKey(input) : input
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the identity key: ${(err as Error).message}`)
  }
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new InvalidArgumentError('identity must be an Ed25519 private key (generateIdentity() makes one)')
  return key
}

function pskBytes(psk: KeyMaterial): Buffer {
  const bytes = typeof psk === 'string' ? Buffer.from(psk, 'utf8') : Buffer.from(psk)
  if (bytes.length < MIN_PSK_BYTES) throw new InvalidArgumentError(`a pre-shared key needs at least ${MIN_PSK_BYTES} bytes of key material, got ${bytes.length}: use 32 random bytes, or pass a human-chosen secret as { passphrase } (stretched with scrypt)`, { bytes: bytes.length, min: MIN_PSK_BYTES })
  return bytes
}

function pskId(id: string | undefined): string {
  const v = id ?? 'default'
  if (!PSK_ID.test(v)) throw new InvalidArgumentError(`pskId must match ${String(PSK_ID)}`)
  return v
}

export function normalizeServerAuth(auth: ServerAuth | undefined): NormalizedAuth {
  if (auth === undefined || auth === null || typeof auth !== 'object') throw new InvalidArgumentError('listen() needs auth: { psk }, { passphrase } or { identity, trusted }')
  const hasPsk = auth.psk !== undefined
  const hasPassphrase = auth.passphrase !== undefined
  const hasId = auth.identity !== undefined
  if (hasPsk && hasPassphrase) throw new InvalidArgumentError('give either psk or passphrase, not both')
  if (!hasPsk && !hasPassphrase && !hasId) throw new InvalidArgumentError('auth needs a psk, a passphrase, or an identity with trusted peer keys')
  if (hasId && (!Array.isArray(auth.trusted) || auth.trusted.length === 0)) throw new InvalidArgumentError('auth.identity needs auth.trusted: the public keys of the peers to accept')
  const identity = hasId ? privateKey(auth.identity!) : null
  return {
    psk: hasPsk ? pskBytes(auth.psk!) : null,
    passphrase: null,
    serverPassphrase: hasPassphrase ? passphraseBytes(auth.passphrase) : null,
    listenerKey: null,
    pskId: pskId(auth.pskId),
    identity,
    identityId: identity === null ? null : rawPublicKey(identity),
    trusted: new Set((auth.trusted ?? []).map(rawPublicKey)),
  }
}

export function normalizeClientAuth(auth: ClientAuth | undefined): NormalizedAuth {
  if (auth === undefined || auth === null || typeof auth !== 'object') throw new InvalidArgumentError('connect() needs auth: { psk }, { passphrase } or { identity, trusted }')
  const methods = ['psk', 'passphrase', 'identity'].filter((k) => k in auth)
  if (methods.length > 1) throw new InvalidArgumentError(`give one of psk, passphrase or identity, not ${methods.join(' and ')}`)
  const none = { psk: null, passphrase: null, serverPassphrase: null, listenerKey: null, identity: null, identityId: null, trusted: new Set<string>() }
  if ('psk' in auth) return { ...none, psk: pskBytes(auth.psk), pskId: pskId(auth.pskId) }
  if ('passphrase' in auth) return { ...none, passphrase: new PassphraseKeys(passphraseBytes(auth.passphrase)), pskId: pskId(auth.pskId) }
  if ('identity' in auth) {
    if (!Array.isArray(auth.trusted) || auth.trusted.length === 0) throw new InvalidArgumentError('auth.identity needs auth.trusted: the server public keys to accept')
    const identity = privateKey(auth.identity)
    return { ...none, pskId: 'default', identity, identityId: rawPublicKey(identity), trusted: new Set(auth.trusted.map(rawPublicKey)) }
  }
  throw new InvalidArgumentError('auth needs psk, passphrase or identity')
}

/** A listener's credentials ready to serve: a passphrase is stretched once, under a salt drawn now. */
export async function withListenerKey(auth: NormalizedAuth): Promise<NormalizedAuth> {
  if (auth.serverPassphrase === null || auth.listenerKey !== null) return auth
  return { ...auth, listenerKey: await stretchForListener(auth.serverPassphrase) }
}
