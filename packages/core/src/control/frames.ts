/**
 * Control-plane frames. The handshake (hello, welcome, finish) and errors during
 * it are JSON text frames; after the handshake every message is a sealed binary
 * frame holding a JSON envelope (request, response, or `bye`: the end of the
 * channel, with the error that ended it). Each is checked against its schema.
 */
import * as v from 'valibot'
import { ProtocolError } from '../errors.js'
import { errorRecordSchema, text, uint } from './record-schema.js'

/** Largest frame a peer may send; larger ones get an error reply and the connection is closed. */
export const MAX_FRAME_BYTES = 1 << 20
/** 2: sealed `bye`, passphrase hellos and the welcome's salt in the transcript. */
export const PROTOCOL_VERSION = 2 as const

const b64 = (bytes: number) => v.pipe(v.string(), v.regex(new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((bytes * 4) / 3)}}$`), `${bytes} bytes in base64url`))
export const key32 = b64(32)
const sig64 = b64(64)
const channelId = v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/))

export const helloSchema = v.strictObject({
  t: v.literal('hello'),
  v: v.literal(PROTOCOL_VERSION),
  // purpose 'peer': session records; 'daemon': a local client of the session daemon.
  purpose: v.picklist(['peer', 'daemon']),
  // auth 'passphrase': a PSK stretched with scrypt under the salt the welcome carries.
  auth: v.picklist(['psk', 'passphrase', 'ed25519']),
  pskId: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.:@-]{1,64}$/))),
  identity: v.optional(key32),
  eph: key32,
  nonce: key32,
  resume: v.optional(channelId),
})
export type HelloFrame = v.InferOutput<typeof helloSchema>

export const welcomeSchema = v.strictObject({
  t: v.literal('welcome'),
  v: v.literal(PROTOCOL_VERSION),
  channel: channelId,
  resumed: v.boolean(),
  eph: key32,
  nonce: key32,
  /** The listener's scrypt salt (passphrase hellos only). */
  salt: v.optional(b64(16)),
  identity: v.optional(key32),
  sig: v.optional(sig64),
  mac: key32,
})
export type WelcomeFrame = v.InferOutput<typeof welcomeSchema>

export const finishSchema = v.strictObject({
  t: v.literal('finish'),
  sig: v.optional(sig64),
  mac: key32,
  resumeProof: v.optional(key32),
})
export type FinishFrame = v.InferOutput<typeof finishSchema>

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
