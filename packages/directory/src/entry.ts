/**
 * Directory entries: what a host publishes about itself and its sessions, signed with its Ed25519
 * identity key. A stored value is `{"body":"<JSON text>","sig":"<base64url>"}`: the signature
 * covers the exact bytes of `body`, so no canonical JSON is needed. Everything read from the store
 * is checked here (size, JSON, every field's type and bounds, name vs key, signature) and a bad
 * entry becomes a DirectoryError with a stable code, never an exception of another kind.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { isIP } from 'node:net'
import { publicKeyId, type PrivateKeyInput, type PublicKeyInput } from '@rdma-session/core'
import { DirectoryError } from './errors.js'

/** Largest stored value accepted. */
export const MAX_ENTRY_BYTES = 16 * 1024
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/
const KEY_ID = /^[A-Za-z0-9_-]{43}$/
const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/
const URL_RE = /^(wss?:\/\/|ws\+unix:|rdmacm:\/\/)[^\s]{1,250}$/
const GID = /^[0-9a-fA-F:.]{2,45}$/

export interface RoceAddress {
  readonly address: string
  readonly port?: number
  readonly gid?: string
}

/** What peers need to reach a host. */
export interface HostInfo {
  readonly name: string
  /** Control-plane URLs by transport: ws (`ws://host:port`, `wss://…`) and, once it exists, rdma_cm. */
  readonly urls: { readonly ws: readonly string[]; readonly rdmaCm?: readonly string[] }
  readonly roce: readonly RoceAddress[]
  /** The host's Ed25519 identity public key (43-character base64url id). */
  readonly identity: string
  readonly capabilities: { readonly providers: readonly string[]; readonly encryption: readonly string[] }
  readonly labels: Readonly<Record<string, string>>
}

export interface HostRecord extends HostInfo {
  readonly v: 1
  readonly kind: 'host'
  /** When the host signed the entry (ms since the epoch). */
  readonly issuedAt: number
  /** An authority's endorsement of (name, identity), from endorseHost(); optional. */
  readonly endorsement?: string
}

/** A session a host publishes so authorized processes can find and join it by ID. */
export interface SessionRecord {
  readonly v: 1
  readonly kind: 'session'
  readonly id: string
  /** The publishing host (its entry's key signs this record; its control plane takes the join). */
  readonly host: string
  /** The session's remote as the publishing host sees it (RoCE address and port). */
  readonly remote: { readonly address: string; readonly port: number }
  /** The publishing host's own end of the session (its RoCE address and port), if known. */
  readonly local?: { readonly address: string; readonly port: number }
  /** The host at the other end, if known. */
  readonly peer?: string
  /** Identity key ids that may see the record; ['*'] for every reader. Joining still needs a join token. */
  readonly joiners: readonly string[]
  readonly issuedAt: number
}

function malformed(what: string, details: Record<string, unknown> = {}): DirectoryError {
  return new DirectoryError('ERR_DIRECTORY_MALFORMED', `malformed directory entry: ${what}`, details)
}

/**
 * Ed25519 public keys of small order (libsodium's list, compared with the sign bit cleared). With
 * such a key a crafted signature verifies for many messages (OpenSSL accepts the all-zero key with
 * an all-zero signature for some), so a "signed" entry would prove nothing: refuse them.
 */
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((h) => Buffer.from(h, 'hex'))

export function isWeakKey(id: string): boolean {
  const raw = Buffer.from(id, 'base64url')
  if (raw.length !== 32) return true
  const masked = Buffer.from(raw)
  masked[31] = masked[31]! & 0x7f
  return SMALL_ORDER.some((k) => k.equals(masked))
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function strings(v: unknown, what: string, max: number, re: RegExp): string[] {
  if (!Array.isArray(v) || v.length > max) throw malformed(`${what} must be a list of at most ${max} strings`)
  for (const s of v) if (typeof s !== 'string' || !re.test(s)) throw malformed(`${what} has an invalid item ${JSON.stringify(String(s).slice(0, 80))}`)
  return v as string[]
}

export function checkName(name: unknown, what = 'host name'): string {
  if (typeof name !== 'string' || !NAME.test(name)) throw new DirectoryError('ERR_DIRECTORY_MALFORMED', `${what} ${JSON.stringify(String(name).slice(0, 80))} must match ${String(NAME)}`)
  return name
}

export function checkSessionId(id: unknown): string {
  if (typeof id !== 'string' || !SESSION_ID.test(id)) throw new DirectoryError('ERR_DIRECTORY_MALFORMED', `session ID ${JSON.stringify(String(id).slice(0, 80))} must match ${String(SESSION_ID)}`)
  return id
}

function checkRoce(v: unknown): RoceAddress[] {
  if (!Array.isArray(v) || v.length > 16) throw malformed('roce must be a list of at most 16 addresses')
  return v.map((r) => {
    if (!isObj(r) || typeof r.address !== 'string' || isIP(r.address) === 0) throw malformed('a roce item needs an IP address')
    if (r.port !== undefined && (!Number.isInteger(r.port) || (r.port as number) < 1 || (r.port as number) > 65535)) throw malformed('a roce port must be 1..65535')
    if (r.gid !== undefined && (typeof r.gid !== 'string' || !GID.test(r.gid))) throw malformed('a roce gid must be an IPv6-style GID')
    return { address: r.address, ...(r.port === undefined ? {} : { port: r.port as number }), ...(r.gid === undefined ? {} : { gid: r.gid as string }) }
  })
}

function checkLabels(v: unknown): Record<string, string> {
  if (!isObj(v)) throw malformed('labels must be an object')
  const keys = Object.keys(v)
  if (keys.length > 64) throw malformed('at most 64 labels')
  for (const k of keys) {
    if (!LABEL_KEY.test(k)) throw malformed(`label key ${JSON.stringify(k.slice(0, 80))} must match ${String(LABEL_KEY)}`)
    const val = v[k]
    if (typeof val !== 'string' || val.length > 128) throw malformed(`label '${k}' must be a string of at most 128 characters`)
  }
  return { ...(v as Record<string, string>) }
}

/** Checks the fields a host gives to register (and that a stored host body holds). */
export function checkHostInfo(v: unknown): HostInfo {
  if (!isObj(v)) throw malformed('a host entry must be an object')
  const name = checkName(v.name)
  if (!isObj(v.urls)) throw malformed('urls must be an object { ws: [...] }')
  const ws = strings(v.urls.ws ?? [], 'urls.ws', 8, URL_RE)
  const rdmaCm = v.urls.rdmaCm === undefined ? undefined : strings(v.urls.rdmaCm, 'urls.rdmaCm', 8, URL_RE)
  if (typeof v.identity !== 'string' || !KEY_ID.test(v.identity)) throw malformed('identity must be a 43-character base64url Ed25519 key id')
  if (isWeakKey(v.identity)) throw malformed(`identity ${v.identity} is an Ed25519 key of small order, which proves nothing`)
  const caps = v.capabilities ?? { providers: [], encryption: [] }
  if (!isObj(caps)) throw malformed('capabilities must be an object')
  const providers = strings(caps.providers ?? [], 'capabilities.providers', 16, /^[A-Za-z0-9@/._-]{1,64}$/)
  const encryption = strings(caps.encryption ?? [], 'capabilities.encryption', 16, /^[A-Za-z0-9._-]{1,64}$/)
  return {
    name,
    urls: { ws, ...(rdmaCm === undefined ? {} : { rdmaCm }) },
    roce: checkRoce(v.roce ?? []),
    identity: v.identity,
    capabilities: { providers, encryption },
    labels: checkLabels(v.labels ?? {}),
  }
}

function checkHostRecord(v: unknown): HostRecord {
  if (!isObj(v) || v.v !== 1 || v.kind !== 'host') throw malformed('not a v1 host entry')
  const info = checkHostInfo(v)
  if (typeof v.issuedAt !== 'number' || !Number.isFinite(v.issuedAt)) throw malformed('issuedAt must be a number')
  if (v.endorsement !== undefined && (typeof v.endorsement !== 'string' || v.endorsement.length > 1024)) throw malformed('endorsement must be a string')
  return { v: 1, kind: 'host', ...info, issuedAt: v.issuedAt, ...(v.endorsement === undefined ? {} : { endorsement: v.endorsement as string }) }
}

function checkSessionRecord(v: unknown): SessionRecord {
  if (!isObj(v) || v.v !== 1 || v.kind !== 'session') throw malformed('not a v1 session entry')
  const id = checkSessionId(v.id)
  const host = checkName(v.host)
  const endpoint = (e: unknown, what: string): { address: string; port: number } => {
    if (!isObj(e) || typeof e.address !== 'string' || isIP(e.address) === 0 || !Number.isInteger(e.port) || (e.port as number) < 0 || (e.port as number) > 65535) throw malformed(`${what} must be { address: IP, port }`)
    return { address: e.address, port: e.port as number }
  }
  const remote = endpoint(v.remote, 'remote')
  const local = v.local === undefined ? undefined : endpoint(v.local, 'local')
  const peer = v.peer === undefined ? undefined : checkName(v.peer, 'peer name')
  const joiners = strings(v.joiners, 'joiners', 256, /^(\*|[A-Za-z0-9_-]{43})$/)
  if (typeof v.issuedAt !== 'number' || !Number.isFinite(v.issuedAt)) throw malformed('issuedAt must be a number')
  return { v: 1, kind: 'session', id, host, remote, ...(local === undefined ? {} : { local }), ...(peer === undefined ? {} : { peer }), joiners, issuedAt: v.issuedAt }
}

function publicKeyFromId(id: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: id }, format: 'jwk' })
}

function privateKeyOf(input: PrivateKeyInput): KeyObject {
  const key = typeof input === 'string' ? createPrivateKey(input) : input
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new DirectoryError('ERR_DIRECTORY_CONFIG', 'the identity must be an Ed25519 private key')
  return key
}

/** Signs a body with the identity key: the stored value. */
export function sealEntry(body: HostRecord | SessionRecord, identity: PrivateKeyInput): string {
  const text = JSON.stringify(body)
  const sig = sign(null, Buffer.from(text), privateKeyOf(identity)).toString('base64url')
  return JSON.stringify({ body: text, sig })
}

/** Parses a stored value: its body (still unchecked) and signature. */
function unseal(value: unknown, key: string): { text: string; body: unknown; sig: Buffer } {
  if (typeof value !== 'string') throw malformed('not a string', { key })
  if (Buffer.byteLength(value) > MAX_ENTRY_BYTES) throw malformed(`larger than ${MAX_ENTRY_BYTES} bytes`, { key })
  let outer: unknown
  try {
    outer = JSON.parse(value)
  } catch {
    throw malformed('not JSON', { key })
  }
  if (!isObj(outer) || typeof outer.body !== 'string' || typeof outer.sig !== 'string') throw malformed('expected { body, sig }', { key })
  const sig = Buffer.from(outer.sig, 'base64url')
  if (sig.length !== 64) throw malformed('the signature is not 64 bytes', { key })
  let body: unknown
  try {
    body = JSON.parse(outer.body)
  } catch {
    throw malformed('the body is not JSON', { key })
  }
  return { text: outer.body, body, sig }
}

function checkSig(text: string, sig: Buffer, identity: string, what: string): void {
  let ok = false
  try {
    ok = verify(null, Buffer.from(text), publicKeyFromId(identity), sig)
  } catch {
    ok = false
  }
  if (!ok) throw new DirectoryError('ERR_DIRECTORY_SIGNATURE', `${what}: the signature does not verify with key ${identity}; the entry was altered or forged`, { identity })
}

/** Reads a stored host entry for `name`: checked and signature-verified (trust is the caller's). */
export function openHostEntry(value: unknown, name: string): HostRecord {
  const { text, body, sig } = unseal(value, name)
  const rec = checkHostRecord(body)
  if (rec.name !== name) throw malformed(`the entry stored as '${name}' names '${rec.name}'`, { name, named: rec.name })
  checkSig(text, sig, rec.identity, `host entry '${name}'`)
  return rec
}

/** Reads a stored session entry: checked; its signature is verified with the key of its host's entry. */
export function openSessionEntry(value: unknown, id: string, hostIdentity: (host: string) => Promise<string>): Promise<SessionRecord> {
  const { text, body, sig } = unseal(value, id)
  const rec = checkSessionRecord(body)
  if (rec.id !== id) throw malformed(`the session entry stored as '${id}' names '${rec.id}'`, { id })
  return hostIdentity(rec.host).then((identity) => {
    checkSig(text, sig, identity, `session entry '${id}' (host '${rec.host}')`)
    return rec
  })
}

/**
 * An authority's statement that `identity` is the key of host `name` until `exp`:
 * `rse1.<payload base64url>.<Ed25519 signature base64url>`. Clients that trust the authority's
 * public key then trust every endorsed host without a list of host keys.
 */
export function endorseHost(authority: PrivateKeyInput, host: { name: string; identity: PublicKeyInput }, options: { ttlMs?: number } = {}, now = Date.now()): string {
  const payload = Buffer.from(JSON.stringify({ name: checkName(host.name), key: publicKeyId(host.identity), exp: now + (options.ttlMs ?? 30 * 86_400_000) })).toString('base64url')
  const sig = sign(null, Buffer.from(`rse1.${payload}`), privateKeyOf(authority)).toString('base64url')
  return `rse1.${payload}.${sig}`
}

/** True when `endorsement` is a valid, unexpired statement by one of `authorities` that `identity` is host `name`'s key. */
export function checkEndorsement(endorsement: string, name: string, identity: string, authorities: readonly string[], now = Date.now()): boolean {
  const parts = endorsement.split('.')
  if (parts.length !== 3 || parts[0] !== 'rse1') return false
  let claims: unknown
  try {
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'))
  } catch {
    return false
  }
  if (!isObj(claims) || claims.name !== name || claims.key !== identity || typeof claims.exp !== 'number' || claims.exp <= now) return false
  const sig = Buffer.from(parts[2]!, 'base64url')
  return authorities.some((a) => {
    try {
      return verify(null, Buffer.from(`rse1.${parts[1]}`), publicKeyFromId(a), sig)
    } catch {
      return false
    }
  })
}
