/**
 * The control-plane handshake: X25519 ephemeral ECDH, authenticated with a
 * pre-shared key (mixed into the key schedule) or Ed25519 signatures over the
 * transcript. HKDF-SHA256 derives the finished-MAC keys, the frame keys of
 * both directions, the channel secret (sessions derive their secrets from it)
 * and the resume key. Both finished messages MAC the transcript, so a changed
 * byte in any handshake frame fails it. Only node:crypto primitives are used.
 *
 *   client -> hello   { eph, nonce, auth, identity?, resume? }
 *   server -> welcome { eph, nonce, channel, identity?, sig?, mac }
 *   client -> finish  { sig?, mac, resumeProof? }
 */
import { createHash, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import { AuthError, ProtocolError } from '../errors.js'
import type { NormalizedAuth } from './auth.js'
import { PROTOCOL_VERSION, type FinishFrame, type HelloFrame, type WelcomeFrame } from './frames.js'

const LABEL = 'rdma-session ctl v1'

/** What a finished handshake gives a connection. */
export interface HandshakeResult {
  readonly channelId: string
  readonly resumed: boolean
  /** Who the peer is: `psk:<id>` or `ed25519:<public key id>`. */
  readonly peerId: string
  readonly sendKey: Buffer
  readonly sendIv: Buffer
  readonly recvKey: Buffer
  readonly recvIv: Buffer
  /** Fresh per handshake; a resumed channel keeps the secret of its first handshake instead. */
  readonly channelSecret: Buffer
  readonly resumeKey: Buffer
}

interface Schedule {
  th1: Buffer
  serverMac: Buffer
  clientMac: Buffer
  c2sKey: Buffer
  s2cKey: Buffer
  c2sIv: Buffer
  s2cIv: Buffer
  channelSecret: Buffer
  resumeKey: Buffer
}

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url')
const unb64u = (s: string): Buffer => Buffer.from(s, 'base64url')
const sha256 = (...parts: (Buffer | string)[]): Buffer => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}
const hmac = (key: Buffer, ...parts: Buffer[]): Buffer => {
  const h = createHmac('sha256', key)
  for (const p of parts) h.update(p)
  return h.digest()
}
const equal = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b)

function x25519Public(raw: string): KeyObject {
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw }, format: 'jwk' })
  } catch {
    throw new ProtocolError('the ephemeral key is not an X25519 public key')
  }
}

function ed25519Public(raw: string): KeyObject {
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' })
  } catch {
    throw new AuthError('the identity is not an Ed25519 public key')
  }
}

function ephemeral(): { privateKey: KeyObject; raw: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519')
  return { privateKey, raw: String(publicKey.export({ format: 'jwk' }).x) }
}

function sharedSecret(privateKey: KeyObject, peerRaw: string): Buffer {
  let dh: Buffer
  try {
    dh = diffieHellman({ privateKey, publicKey: x25519Public(peerRaw) })
  } catch {
    throw new AuthError('X25519 key agreement failed (a low-order ephemeral key?)')
  }
  if (dh.every((b) => b === 0)) throw new AuthError('X25519 key agreement gave an all-zero secret')
  return dh
}

/** The canonical transcript of hello and welcome (fields in a fixed order, signature and MAC excluded). */
function transcriptHash(h: HelloFrame, w: Omit<WelcomeFrame, 'sig' | 'mac'>): Buffer {
  const hello = JSON.stringify(['hello', h.v, h.purpose, h.auth, h.pskId ?? null, h.identity ?? null, h.eph, h.nonce, h.resume ?? null])
  const welcome = JSON.stringify(['welcome', w.v, w.channel, w.resumed, w.eph, w.nonce, w.identity ?? null, w.salt ?? null])
  return sha256(LABEL, '\0', hello, '\0', welcome)
}

function schedule(dh: Buffer, psk: Buffer | null, th1: Buffer): Schedule {
  const ikm = psk === null ? dh : Buffer.concat([dh, psk])
  const k = (label: string, n = 32): Buffer => Buffer.from(hkdfSync('sha256', ikm, th1, `${LABEL} ${label}`, n))
  return {
    th1,
    serverMac: k('server finished'),
    clientMac: k('client finished'),
    c2sKey: k('c2s key'),
    s2cKey: k('s2c key'),
    c2sIv: k('c2s iv', 4),
    s2cIv: k('s2c iv', 4),
    channelSecret: k('channel secret'),
    resumeKey: k('resume key'),
  }
}

const serverSigned = (th1: Buffer): Buffer => Buffer.concat([Buffer.from(`${LABEL} server signature\0`), th1])
const clientSigned = (th2: Buffer): Buffer => Buffer.concat([Buffer.from(`${LABEL} client signature\0`), th2])
const th2Of = (s: Schedule, w: WelcomeFrame): Buffer => sha256(s.th1, w.sig === undefined ? Buffer.alloc(0) : unb64u(w.sig), unb64u(w.mac))

// ---- client

export interface ClientHandshake {
  readonly hello: HelloFrame
  readonly privateKey: KeyObject
}

export function clientHello(auth: NormalizedAuth, purpose: HelloFrame['purpose'], resume: string | null): ClientHandshake {
  const eph = ephemeral()
  const method = auth.psk !== null ? 'psk' : auth.passphrase !== null ? 'passphrase' : 'ed25519'
  const hello: HelloFrame = {
    t: 'hello', v: PROTOCOL_VERSION, purpose, auth: method, eph: eph.raw, nonce: b64u(randomBytes(32)),
    ...(method !== 'ed25519' ? { pskId: auth.pskId } : { identity: auth.identityId! }),
    ...(resume === null ? {} : { resume }),
  }
  return { hello, privateKey: eph.privateKey }
}

/** The client's shared key for this welcome: the raw PSK, or the passphrase stretched under the listener's salt (null with identities). */
export async function clientSharedKey(auth: NormalizedAuth, hello: HelloFrame, welcome: WelcomeFrame): Promise<Buffer | null> {
  if ((welcome.salt !== undefined) !== (hello.auth === 'passphrase')) throw new ProtocolError(hello.auth === 'passphrase' ? 'the server sent no passphrase salt' : 'the server sent a passphrase salt to a client without a passphrase')
  if (auth.passphrase !== null && welcome.salt !== undefined) return auth.passphrase.keyFor(unb64u(welcome.salt))
  return auth.psk
}

/**
 * Checks the server's welcome and answers with finish. `sharedKey` is what
 * clientSharedKey gave; `resumeKey` is the key of the channel being resumed
 * (when the hello asked to resume one).
 */
export function clientFinish(auth: NormalizedAuth, hs: ClientHandshake, welcome: WelcomeFrame, sharedKey: Buffer | null, resumeKey: Buffer | null): { finish: FinishFrame; result: HandshakeResult } {
  const s = schedule(sharedSecret(hs.privateKey, welcome.eph), sharedKey, transcriptHash(hs.hello, welcome))
  if (auth.identity !== null) {
    if (welcome.identity === undefined || welcome.sig === undefined) throw new AuthError('the server did not prove an Ed25519 identity')
    if (!auth.trusted.has(welcome.identity)) throw new AuthError(`unknown server identity ${welcome.identity}: it is not in auth.trusted`, { identity: welcome.identity })
    if (!verify(null, serverSigned(s.th1), ed25519Public(welcome.identity), unb64u(welcome.sig))) throw new AuthError('the server signature over the handshake transcript does not verify (tampered transcript?)')
  }
  const serverMac = hmac(s.serverMac, s.th1, welcome.sig === undefined ? Buffer.alloc(0) : unb64u(welcome.sig))
  if (!equal(serverMac, unb64u(welcome.mac))) {
    throw new AuthError(sharedKey !== null ? `handshake MAC does not verify: wrong ${hs.hello.auth === 'passphrase' ? 'passphrase' : 'pre-shared key'}, or the transcript was tampered with` : 'handshake MAC does not verify: the transcript was tampered with')
  }
  const th2 = th2Of(s, welcome)
  const sig = auth.identity === null ? undefined : b64u(sign(null, clientSigned(th2), auth.identity))
  const mac = b64u(hmac(s.clientMac, th2, sig === undefined ? Buffer.alloc(0) : unb64u(sig)))
  const finish: FinishFrame = { t: 'finish', mac, ...(sig === undefined ? {} : { sig }), ...(resumeKey === null ? {} : { resumeProof: b64u(hmac(resumeKey, th2)) }) }
  const peerId = sharedKey !== null ? `${hs.hello.auth}:${auth.pskId}` : `ed25519:${welcome.identity!}`
  return { finish, result: { channelId: welcome.channel, resumed: welcome.resumed, peerId, sendKey: s.c2sKey, sendIv: s.c2sIv, recvKey: s.s2cKey, recvIv: s.s2cIv, channelSecret: s.channelSecret, resumeKey: s.resumeKey } }
}

// ---- server

export interface ServerHandshake {
  readonly schedule: Schedule
  readonly welcome: WelcomeFrame
  readonly hello: HelloFrame
  readonly peerId: string
}

/** Checks hello against what the server accepts and builds the welcome. Throws AuthError for a method or identity it does not accept. */
export function serverWelcome(auth: NormalizedAuth, hello: HelloFrame, channel: { id: string; resumed: boolean }): ServerHandshake {
  let peerId: string
  let sharedKey: Buffer | null = null
  if (hello.auth === 'psk' || hello.auth === 'passphrase') {
    sharedKey = hello.auth === 'psk' ? auth.psk : (auth.listenerKey?.key ?? null)
    if (sharedKey === null) throw new AuthError(`this server does not accept ${hello.auth === 'psk' ? 'raw pre-shared keys' : 'passphrases'}; authenticate with ${acceptedMethods(auth)}`)
    if (hello.pskId !== auth.pskId) throw new AuthError(`unknown ${hello.auth === 'psk' ? 'pre-shared key' : 'passphrase'} id '${String(hello.pskId)}'`)
    peerId = `${hello.auth}:${auth.pskId}`
  } else {
    if (auth.identity === null) throw new AuthError('this server does not accept Ed25519 identities; authenticate with the pre-shared key')
    if (hello.identity === undefined || !auth.trusted.has(hello.identity)) throw new AuthError(`unknown identity ${String(hello.identity)}: the server does not trust this public key`, { identity: String(hello.identity) })
    peerId = `ed25519:${hello.identity}`
  }
  const eph = ephemeral()
  const core = {
    t: 'welcome' as const, v: PROTOCOL_VERSION, channel: channel.id, resumed: channel.resumed, eph: eph.raw, nonce: b64u(randomBytes(32)),
    ...(hello.auth === 'passphrase' ? { salt: b64u(auth.listenerKey!.salt) } : {}),
    ...(hello.auth === 'ed25519' ? { identity: auth.identityId! } : {}),
  }
  const s = schedule(sharedSecret(eph.privateKey, hello.eph), sharedKey, transcriptHash(hello, core))
  const sig = hello.auth === 'ed25519' ? b64u(sign(null, serverSigned(s.th1), auth.identity!)) : undefined
  const mac = b64u(hmac(s.serverMac, s.th1, sig === undefined ? Buffer.alloc(0) : unb64u(sig)))
  return { schedule: s, hello, peerId, welcome: { ...core, ...(sig === undefined ? {} : { sig }), mac } }
}

/** Checks the client's finish (MAC, signature) and gives the connection keys; check the resume proof with `resumeProofHolds`. */
export function serverFinish(hs: ServerHandshake, finish: FinishFrame): HandshakeResult {
  const s = hs.schedule
  const th2 = th2Of(s, hs.welcome)
  if (hs.hello.auth === 'ed25519') {
    if (finish.sig === undefined || !verify(null, clientSigned(th2), ed25519Public(hs.hello.identity!), unb64u(finish.sig))) {
      throw new AuthError('the client signature over the handshake transcript does not verify (tampered transcript?)')
    }
  }
  const mac = hmac(s.clientMac, th2, finish.sig === undefined ? Buffer.alloc(0) : unb64u(finish.sig))
  if (!equal(mac, unb64u(finish.mac))) {
    throw new AuthError(hs.hello.auth !== 'ed25519' ? `handshake MAC does not verify: wrong ${hs.hello.auth === 'psk' ? 'pre-shared key' : 'passphrase'}, or the transcript was tampered with` : 'handshake MAC does not verify: the transcript was tampered with')
  }
  return { channelId: hs.welcome.channel, resumed: hs.welcome.resumed, peerId: hs.peerId, sendKey: s.s2cKey, sendIv: s.s2cIv, recvKey: s.c2sKey, recvIv: s.c2sIv, channelSecret: s.channelSecret, resumeKey: s.resumeKey }
}

function acceptedMethods(auth: NormalizedAuth): string {
  const m = [auth.psk !== null ? 'the pre-shared key' : null, auth.listenerKey !== null ? 'the passphrase' : null, auth.identity !== null ? 'an Ed25519 identity' : null]
  return m.filter((x) => x !== null).join(' or ')
}

/** True when the finish proves the resume key of the channel the hello asked to resume (or resumes none). */
export function resumeProofHolds(hs: ServerHandshake, finish: FinishFrame, resumeKey: Buffer | null): boolean {
  if (resumeKey === null) return true
  return finish.resumeProof !== undefined && equal(hmac(resumeKey, th2Of(hs.schedule, hs.welcome)), unb64u(finish.resumeProof))
}

/** A session's secret from its channel's secret: both sides derive it; it never travels. */
export function deriveSessionSecret(channelSecret: Uint8Array, sessionId: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', channelSecret, Buffer.from(sessionId, 'utf8'), `${LABEL} session secret`, 32))
}
