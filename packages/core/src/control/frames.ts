/**
 * Control-plane frames. The handshake opens with a JSON text hello (and, for a
 * passphrase, the server's salt); the Noise handshake messages are binary
 * frames; errors during it are JSON text frames. After the handshake every
 * message is a sealed binary frame (Noise transport messages): first the
 * client's finish and the server's ready, then JSON envelopes (request, response, or `bye`: the end of the
 * channel, with the error that ended it). Each is checked against its schema.
 */
import * as v from 'valibot'
import { ProtocolError } from '../errors.js'
import { errorRecordSchema, text, uint } from './record-schema.js'

/** Largest frame a peer may send; larger ones get an error reply and the connection is closed. */
export const MAX_FRAME_BYTES = 1 << 20
/** 3: the Noise handshake (NNpsk0 for pre-shared keys and passphrases, XX for Ed25519 identities) and Noise transport messages. */
export const PROTOCOL_VERSION = 3 as const

const b64 = (bytes: number) => v.pipe(v.string(), v.regex(new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((bytes * 4) / 3)}}$`), `${bytes} bytes in base64url`))
export const key32 = b64(32)
const channelId = v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/))

/** The client's first frame (text): what it asks for, bound into the Noise prologue, and the first Noise message (base64url). */
export const helloSchema = v.strictObject({
  t: v.literal('hello'),
  v: v.literal(PROTOCOL_VERSION),
  // purpose 'peer': session records; 'daemon': a local client of the session daemon.
  purpose: v.picklist(['peer', 'daemon']),
  // auth 'passphrase': a PSK stretched with scrypt under the salt the server answers with (then the first Noise message follows it).
  auth: v.picklist(['psk', 'passphrase', 'ed25519']),
  pskId: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.:@-]{1,64}$/))),
  resume: v.optional(channelId),
  noise: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,400}$/))),
})
export type HelloFrame = v.InferOutput<typeof helloSchema>

/** The server's answer to a passphrase hello (text): the listener's scrypt salt. */
export const saltSchema = v.strictObject({ t: v.literal('salt'), v: v.literal(PROTOCOL_VERSION), salt: b64(16) })
export type SaltFrame = v.InferOutput<typeof saltSchema>

/** The client's first transport message: the end of its handshake, with the proof for the channel it resumes. */
export const finishSchema = v.strictObject({ t: v.literal('finish'), resumeProof: v.optional(key32) })
export type FinishMessage = v.InferOutput<typeof finishSchema>

/** The server's first transport message: the channel this connection carries. */
export const readySchema = v.strictObject({ t: v.literal('ready'), channel: channelId, resumed: v.boolean() })
export type ReadyMessage = v.InferOutput<typeof readySchema>

export const errorFrameSchema = v.strictObject({ t: v.literal('error'), code: v.pipe(v.string(), v.regex(/^ERR_[A-Z_]{1,40}$/)), message: text(2048) })
export type ErrorFrame = v.InferOutput<typeof errorFrameSchema>

const requestId = uint(Number.MAX_SAFE_INTEGER)
const requestEnvelope = v.strictObject({ t: v.literal('req'), id: requestId, body: v.unknown() })
const replyEnvelope = v.strictObject({ t: v.literal('res'), id: requestId, ok: v.literal(true), body: v.unknown() })
const errorEnvelope = v.strictObject({ t: v.literal('err'), id: requestId, error: errorRecordSchema })
/** The sender ends the channel for good (sealed, so only the peer can end it); `error` says why when it was a failure. */
const byeEnvelope = v.strictObject({ t: v.literal('bye'), error: v.optional(errorRecordSchema) })

/** What a sealed frame holds. */
export const sealedMessageSchema = v.variant('t', [requestEnvelope, replyEnvelope, errorEnvelope, byeEnvelope])
/** The envelopes a channel handles (a `bye` is handled by the connection). */
export type Envelope = v.InferOutput<typeof requestEnvelope> | v.InferOutput<typeof replyEnvelope> | v.InferOutput<typeof errorEnvelope>
export type ByeEnvelope = v.InferOutput<typeof byeEnvelope>

/** Throws ProtocolError naming both versions when a handshake frame is of another protocol version. */
export function checkVersion(raw: unknown, what: string): void {
  const got = (raw as { v?: unknown } | null)?.v
  if (typeof got === 'number' && got !== PROTOCOL_VERSION) throw new ProtocolError(`${what}: control protocol version ${got}, but this side speaks ${PROTOCOL_VERSION}; run the same rdma-session version on both ends`, { version: got, expected: PROTOCOL_VERSION })
}

/** Parses JSON text and checks it against `schema`; throws ProtocolError naming the first problem. */
export function parseFrame<S extends v.GenericSchema>(schema: S, raw: string | unknown, what: string): v.InferOutput<S> {
  let value: unknown = raw
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw)
    } catch {
      throw new ProtocolError(`${what}: not JSON`)
    }
  }
  return check(schema, value, what)
}

/** Checks an already parsed value against `schema`. */
export function check<S extends v.GenericSchema>(schema: S, value: unknown, what: string): v.InferOutput<S> {
  const r = v.safeParse(schema, value)
  if (!r.success) {
    const issue = r.issues[0]
    const path = issue.path?.map((p: { key: unknown }) => String(p.key)).join('.') ?? ''
    throw new ProtocolError(`${what}: ${path === '' ? '' : `${path}: `}${issue.message}`.slice(0, 300))
  }
  return r.output
}
