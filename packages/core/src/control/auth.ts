/** Control-plane credentials: a pre-shared key, or Ed25519 identities with a list of trusted peer keys (node:crypto KeyObjects). */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { InvalidArgumentError } from '../errors.js'

/** Raw key material: bytes, or a string (UTF-8). At least 16 bytes; use 32 random bytes. */
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

export interface IdentityAuth {
  /** This side's Ed25519 private key. */
  readonly identity: PrivateKeyInput
  /** Peer public keys this side accepts. */
  readonly trusted: readonly PublicKeyInput[]
}

/** What a client authenticates with: exactly one method. */
export type ClientAuth = PskAuth | IdentityAuth

/** What a server accepts: a pre-shared key, Ed25519 identities, or both. */
export interface ServerAuth {
  readonly psk?: KeyMaterial
  readonly pskId?: string
  readonly identity?: PrivateKeyInput
  readonly trusted?: readonly PublicKeyInput[]
}

/** Credentials after checking, as the handshake uses them. */
export interface NormalizedAuth {
  readonly psk: Buffer | null
  readonly pskId: string
  readonly identity: KeyObject | null
  /** base64url of our raw Ed25519 public key. */
  readonly identityId: string | null
  /** base64url raw public keys we accept. */
  readonly trusted: ReadonlySet<string>
}

export const MIN_PSK_BYTES = 16
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
  if (bytes.length < MIN_PSK_BYTES) throw new InvalidArgumentError(`a pre-shared key needs at least ${MIN_PSK_BYTES} bytes (use 32 random bytes), got ${bytes.length}`)
  return bytes
}

function pskId(id: string | undefined): string {
  const v = id ?? 'default'
  if (!PSK_ID.test(v)) throw new InvalidArgumentError(`pskId must match ${String(PSK_ID)}`)
  return v
}

export function normalizeServerAuth(auth: ServerAuth | undefined): NormalizedAuth {
  if (auth === undefined || auth === null || typeof auth !== 'object') throw new InvalidArgumentError('listen() needs auth: { psk } or { identity, trusted }')
  const hasPsk = auth.psk !== undefined
  const hasId = auth.identity !== undefined
  if (!hasPsk && !hasId) throw new InvalidArgumentError('auth needs a psk, or an identity with trusted peer keys')
  if (hasId && (!Array.isArray(auth.trusted) || auth.trusted.length === 0)) throw new InvalidArgumentError('auth.identity needs auth.trusted: the public keys of the peers to accept')
  const identity = hasId ? privateKey(auth.identity!) : null
  return {
    psk: hasPsk ? pskBytes(auth.psk!) : null,
    pskId: pskId(auth.pskId),
    identity,
    identityId: identity === null ? null : rawPublicKey(identity),
    trusted: new Set((auth.trusted ?? []).map(rawPublicKey)),
  }
}

export function normalizeClientAuth(auth: ClientAuth | undefined): NormalizedAuth {
  if (auth === undefined || auth === null || typeof auth !== 'object') throw new InvalidArgumentError('connect() needs auth: { psk } or { identity, trusted }')
  if ('psk' in auth && 'identity' in auth) throw new InvalidArgumentError('give either psk or identity, not both')
  if ('psk' in auth) return { psk: pskBytes(auth.psk), pskId: pskId(auth.pskId), identity: null, identityId: null, trusted: new Set() }
  if ('identity' in auth) {
    if (!Array.isArray(auth.trusted) || auth.trusted.length === 0) throw new InvalidArgumentError('auth.identity needs auth.trusted: the server public keys to accept')
    const identity = privateKey(auth.identity)
    return { psk: null, pskId: 'default', identity, identityId: rawPublicKey(identity), trusted: new Set(auth.trusted.map(rawPublicKey)) }
  }
  throw new InvalidArgumentError('auth needs psk or identity')
}
