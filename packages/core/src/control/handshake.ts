/**
 * The control-plane handshake: the Noise Protocol Framework, run by
 * noise-handshake (holepunchto). Pre-shared keys and passphrases use
 * Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b, Ed25519 identities
 * Noise_XX_25519_ChaChaPoly_BLAKE2b (identities as X25519 static keys, see
 * noise-keys.ts). The hello's fields (version, purpose, method, PSK id, the
 * channel to resume) and a passphrase's salt are the Noise prologue, so a
 * changed byte in any of them fails the handshake. Record protection is Noise
 * transport messages (noise-transport.ts).
 *
 *   client -> hello  { v, purpose, auth, pskId?, resume?, noise: msg 1 }   (text)
 *  [server -> salt   { salt }; client -> msg 1]                           (passphrase only)
 *   server -> msg 2                                                        (binary)
 *  [client -> msg 3]                                                       (XX only)
 *   client -> finish { resumeProof? }                 (sealed: first transport message)
 *   server -> ready  { channel, resumed }             (sealed)
 *
 * Channel secret and resume key come from the split() keys and the handshake
 * hash by HKDF-SHA256; they never travel. A resumed connection is a new
 * handshake bound to the old channel: the client proves the old channel's
 * resume key with an HMAC over the new handshake hash.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import NoiseState from 'noise-handshake'
import { AuthError, ProtocolError } from '../errors.js'
import type { NormalizedAuth } from './auth.js'
import type { GenericSchema, InferOutput } from 'valibot'
import { PROTOCOL_VERSION, finishSchema, parseFrame, readySchema, type HelloFrame, type ReadyMessage, type SaltFrame } from './frames.js'
import { noisePsk, peerIdentity, staticKeyPair } from './noise-keys.js'
import { FrameOpener, FrameSealer } from './noise-transport.js'

const LABEL = 'rdma-session ctl v3'

/** The Noise pattern of each authentication method. */
export const NOISE_PATTERNS = { psk: 'NNpsk0', passphrase: 'NNpsk0', ed25519: 'XX' } as const

/** What a finished handshake gives a connection. */
export interface HandshakeResult {
  readonly channelId: string
  readonly resumed: boolean
  /** Who the peer is: `psk:<id>`, `passphrase:<id>` or `ed25519:<public key id>`. */
  readonly peerId: string
  /** Fresh per handshake; a resumed channel keeps the secret of its first handshake instead. */
  readonly channelSecret: Buffer
  readonly resumeKey: Buffer
}

/** A finished handshake: its result and the record protection of the connection. */
export interface Handshaken {
  readonly result: HandshakeResult
  readonly sealer: FrameSealer
  readonly opener: FrameOpener
}

interface Split {
  readonly hash: Buffer
  readonly channelSecret: Buffer
  readonly resumeKey: Buffer
  readonly sealer: FrameSealer
  readonly opener: FrameOpener
}

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url')

/** The prologue both sides bind: the hello without its Noise message, and the salt of a passphrase. */
function prologue(hello: HelloFrame, salt: string | null): Buffer {
  return Buffer.from(JSON.stringify([LABEL, hello.v, hello.purpose, hello.auth, hello.pskId ?? null, hello.resume ?? null, salt]), 'utf8')
}

function split(noise: NoiseState, initiator: boolean): Split {
  const tx = noise.tx!
  const rx = noise.rx!
  const hash = Buffer.from(noise.hash!)
  const ikm = Buffer.concat(initiator ? [tx, rx] : [rx, tx])
  const k = (label: string): Buffer => Buffer.from(hkdfSync('sha256', ikm, hash, `${LABEL} ${label}`, 32))
  return { hash, channelSecret: k('channel secret'), resumeKey: k('resume key'), sealer: new FrameSealer(tx), opener: new FrameOpener(rx) }
}

const resumeProof = (resumeKey: Buffer, hash: Buffer): Buffer => createHmac('sha256', resumeKey).update(`${LABEL} resume\0`).update(hash).digest()

function step(run: () => Uint8Array, failure: () => Error): Buffer {
  try {
    return Buffer.from(run())
  } catch {
    throw failure()
  }
}

function opened<S extends GenericSchema>(opener: FrameOpener, frame: Buffer, schema: S, what: string): InferOutput<S> {
  const plain = opener.open(frame)
  if (plain === null) throw new AuthError(`the ${what} message does not authenticate (tampered with?)`)
  return parseFrame(schema, plain.toString('utf8'), what)
}

function keyName(method: HelloFrame['auth']): string {
  return method === 'passphrase' ? 'passphrase' : 'pre-shared key'
}

// ---- client

export class ClientHandshake {
  readonly hello: HelloFrame
  #noise: NoiseState | null = null
  #split: Split | null = null
  #peerId: string | null = null

  constructor(private readonly auth: NormalizedAuth, purpose: HelloFrame['purpose'], private readonly resume: { channelId: string; resumeKey: Buffer } | null) {
    const method = auth.psk !== null ? 'psk' : auth.passphrase !== null ? 'passphrase' : 'ed25519'
    const hello: HelloFrame = { t: 'hello', v: PROTOCOL_VERSION, purpose, auth: method, ...(method !== 'ed25519' ? { pskId: auth.pskId } : {}), ...(resume === null ? {} : { resume: resume.channelId }) }
    this.hello = method === 'passphrase' ? hello : { ...hello, noise: b64u(this.#start(hello, auth.psk, null)) }
  }

  /** True when the hello carries no Noise message: the server's salt comes first (passphrases). */
  get awaitsSalt(): boolean {
    return this.#noise === null
  }

  /** The first Noise message, once the salt is known (passphrases). */
  async onSalt(salt: SaltFrame): Promise<Buffer> {
    if (this.#noise !== null || this.auth.passphrase === null) throw new ProtocolError('the server sent a passphrase salt to a client without a passphrase')
    const key = await this.auth.passphrase.keyFor(Buffer.from(salt.salt, 'base64url'))
    return this.#start(this.hello, key, salt.salt)
  }

  #start(hello: HelloFrame, key: Buffer | null, salt: string | null): Buffer {
    const pattern = NOISE_PATTERNS[hello.auth]
    this.#noise = key === null ? new NoiseState(pattern, true, staticKeyPair(this.auth.identity!)) : new NoiseState(pattern, true, null, { psk: noisePsk(key, this.auth.pskId) })
    this.#noise.initialise(prologue(hello, salt))
    return Buffer.from(this.#noise.send())
  }

  /** Takes message 2; returns what to send: message 3 (XX) and the sealed finish. */
  onMessage2(m2: Buffer): Buffer[] {
    const noise = this.#noise
    if (noise === null) throw new ProtocolError('a Noise message arrived before the salt')
    const payload = step(() => noise.recv(m2), () => new AuthError(this.hello.auth === 'ed25519' ? "the server's handshake message does not authenticate (tampered with, or the server has another identity key)" : `the server's handshake message does not authenticate: wrong ${keyName(this.hello.auth)}, or it was tampered with`))
    const out: Buffer[] = []
    if (this.hello.auth === 'ed25519') {
      this.#peerId = `ed25519:${peerIdentity(noise.rs, payload, this.auth.trusted, 'server')}`
      out.push(Buffer.from(noise.send(Buffer.from(this.auth.identityId!, 'base64url'))))
    } else {
      this.#peerId = `${this.hello.auth}:${this.auth.pskId}`
    }
    this.#split = split(noise, true)
    const proof = this.resume === null ? {} : { resumeProof: b64u(resumeProof(this.resume.resumeKey, this.#split.hash)) }
    out.push(this.#split.sealer.seal(Buffer.from(JSON.stringify({ t: 'finish', ...proof }), 'utf8')))
    return out
  }

  /** Takes the sealed ready: the handshake is done. */
  onReady(frame: Buffer): Handshaken {
    const s = this.#split
    if (s === null) throw new ProtocolError('a transport message arrived before the handshake finished')
    const ready: ReadyMessage = opened(s.opener, frame, readySchema, 'ready')
    if (this.resume !== null && ready.resumed && ready.channel !== this.resume.channelId) throw new ProtocolError('the server resumed another channel')
    return { result: { channelId: ready.channel, resumed: ready.resumed, peerId: this.#peerId!, channelSecret: s.channelSecret, resumeKey: s.resumeKey }, sealer: s.sealer, opener: s.opener }
  }
}

// ---- server

/** The channel a finished handshake carries: a new one, or the one it resumes (with that channel's resume key). */
export type AcceptChannel = (hello: HelloFrame, peerId: string) => { id: string; resumed: boolean; resumeKey: Buffer | null }

export class ServerHandshake {
  readonly #noise: NoiseState
  readonly #salt: string | null
  #split: Split | null = null
  #peerId: string | null = null

  /** Checks the hello against what this server accepts (AuthError for a method or key id it does not accept). */
  constructor(private readonly auth: NormalizedAuth, readonly hello: HelloFrame) {
    let key: Buffer | null = null
    if (hello.auth === 'psk' || hello.auth === 'passphrase') {
      key = hello.auth === 'psk' ? auth.psk : (auth.listenerKey?.key ?? null)
      if (key === null) throw new AuthError(`this server does not accept ${hello.auth === 'psk' ? 'raw pre-shared keys' : 'passphrases'}; authenticate with ${acceptedMethods(auth)}`)
      if (hello.pskId !== auth.pskId) throw new AuthError(`unknown ${keyName(hello.auth)} id '${String(hello.pskId)}'`)
      this.#peerId = `${hello.auth}:${auth.pskId}`
    } else if (auth.identity === null) {
      throw new AuthError(`this server does not accept Ed25519 identities; authenticate with ${acceptedMethods(auth)}`)
    }
    if ((hello.noise === undefined) !== (hello.auth === 'passphrase')) throw new ProtocolError(hello.auth === 'passphrase' ? 'a passphrase hello carries no Noise message (the salt comes first)' : 'the hello carries no Noise message')
    this.#salt = hello.auth === 'passphrase' ? auth.listenerKey!.salt.toString('base64url') : null
    const pattern = NOISE_PATTERNS[hello.auth]
    this.#noise = key === null ? new NoiseState(pattern, false, staticKeyPair(auth.identity!)) : new NoiseState(pattern, false, null, { psk: noisePsk(key, auth.pskId) })
    this.#noise.initialise(prologue(hello, this.#salt))
  }

  /** What a passphrase hello is answered with; null for the others (their first Noise message is in the hello). */
  get saltFrame(): SaltFrame | null {
    return this.#salt === null ? null : { t: 'salt', v: PROTOCOL_VERSION, salt: this.#salt }
  }

  /** Takes message 1, returns message 2. */
  onMessage1(m1: Buffer): Buffer {
    step(() => this.#noise.recv(m1), () => new AuthError(this.hello.auth === 'ed25519' ? "the client's first handshake message is malformed" : `the handshake does not authenticate: wrong ${keyName(this.hello.auth)}, or the hello was tampered with`))
    const m2 = Buffer.from(this.#noise.send(this.hello.auth === 'ed25519' ? Buffer.from(this.auth.identityId!, 'base64url') : undefined))
    if (this.#noise.complete) this.#split = split(this.#noise, false)
    return m2
  }

  /** True when the next frame is message 3 (XX), not the sealed finish. */
  get awaitsMessage3(): boolean {
    return this.#split === null
  }

  /** Takes message 3 (XX): the client's identity. */
  onMessage3(m3: Buffer): void {
    const payload = step(() => this.#noise.recv(m3), () => new AuthError("the client's handshake message does not authenticate (tampered with?)"))
    this.#peerId = `ed25519:${peerIdentity(this.#noise.rs, payload, this.auth.trusted, 'client')}`
    this.#split = split(this.#noise, false)
  }

  /** Takes the sealed finish, picks the channel (checking a resume proof) and gives the sealed ready to send. */
  onFinish(frame: Buffer, accept: AcceptChannel): { ready: Buffer; done: Handshaken } {
    const s = this.#split
    if (s === null) throw new ProtocolError('a transport message arrived before the handshake finished')
    const finish = opened(s.opener, frame, finishSchema, 'finish')
    const channel = accept(this.hello, this.#peerId!)
    if (channel.resumed) {
      const proof = finish.resumeProof === undefined ? null : Buffer.from(finish.resumeProof, 'base64url')
      const expected = resumeProof(channel.resumeKey!, s.hash)
      if (proof === null || proof.length !== expected.length || !timingSafeEqual(proof, expected)) throw new AuthError('the resume proof does not verify: this connection cannot take over the channel')
    }
    const ready: ReadyMessage = { t: 'ready', channel: channel.id, resumed: channel.resumed }
    return {
      ready: s.sealer.seal(Buffer.from(JSON.stringify(ready), 'utf8')),
      done: { result: { channelId: channel.id, resumed: channel.resumed, peerId: this.#peerId!, channelSecret: s.channelSecret, resumeKey: s.resumeKey }, sealer: s.sealer, opener: s.opener },
    }
  }
}

function acceptedMethods(auth: NormalizedAuth): string {
  const m = [auth.psk !== null ? 'the pre-shared key' : null, auth.listenerKey !== null ? 'the passphrase' : null, auth.identity !== null ? 'an Ed25519 identity' : null]
  return m.filter((x) => x !== null).join(' or ')
}

/** A session's secret from its channel's secret: both sides derive it; it never travels. */
export function deriveSessionSecret(channelSecret: Uint8Array, sessionId: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', channelSecret, Buffer.from(sessionId, 'utf8'), `${LABEL} session secret`, 32))
}
