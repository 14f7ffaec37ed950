/** Messages between the session daemon and its local clients (Unix socket, sealed like the peer control plane), with their schemas. */
import * as v from 'valibot'
import type { EndpointRecord, PeerReply, PeerRequest } from '../session/records.js'
import { endpointSchema, peerReplySchema, peerRequestSchema, sessionIdSchema, text, uint } from './record-schema.js'
import { DAEMON_SCOPES, type DaemonScope } from './daemon-roles.js'

const b64 = v.pipe(v.string(), v.regex(/^[A-Za-z0-9+/_=-]{1,700}$/))

/** Credentials a client hands the daemon for a peer (the daemon holds the control connection). */
export const wireAuthSchema = v.union([
  v.strictObject({ psk: b64, pskId: v.optional(text(64)) }),
  v.strictObject({ passphrase: text(1024), pskId: v.optional(text(64)) }),
  v.strictObject({ identity: text(4096), trusted: v.pipe(v.array(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/))), v.minLength(1), v.maxLength(64)) }),
])
export type WireAuth = v.InferOutput<typeof wireAuthSchema>

const url = v.pipe(v.string(), v.maxLength(512), v.regex(/^(ws|wss):\/\/|^ws\+unix:/))

export const daemonRequestSchema = v.variant('op', [
  v.strictObject({ op: v.literal('register'), endpoint: endpointSchema, pid: uint(2 ** 31) }),
  v.strictObject({ op: v.literal('list'), remote: v.optional(text(80)) }),
  v.strictObject({ op: v.literal('open'), url, auth: wireAuthSchema, request: peerRequestSchema }),
  /** A join token; a scope beyond the joiner's ('rekey', 'close', 'creator') only for the creator to grant. */
  v.strictObject({ op: v.literal('token'), sessionId: sessionIdSchema, scope: v.optional(v.pipe(v.array(v.picklist(DAEMON_SCOPES)), v.maxLength(DAEMON_SCOPES.length))) }),
  /** The creator names another process of the session as its creator. */
  v.strictObject({ op: v.literal('set-creator'), sessionId: sessionIdSchema, clientId: uint(Number.MAX_SAFE_INTEGER) }),
  v.strictObject({ op: v.literal('relay'), sessionId: sessionIdSchema, request: peerRequestSchema }),
  // daemon -> client: a request the session's peer sent
  v.strictObject({ op: v.literal('peer'), sessionId: sessionIdSchema, request: peerRequestSchema }),
])
export type DaemonRequest =
  | { op: 'register'; endpoint: EndpointRecord; pid: number }
  | { op: 'list'; remote?: string }
  | { op: 'open'; url: string; auth: WireAuth; request: PeerRequest }
  | { op: 'token'; sessionId: string; scope?: DaemonScope[] }
  | { op: 'set-creator'; sessionId: string; clientId: number }
  | { op: 'relay'; sessionId: string; request: PeerRequest }
  | { op: 'peer'; sessionId: string; request: PeerRequest }

export const sessionInfoSchema = v.strictObject({
  id: sessionIdSchema,
  url,
  remote: endpointSchema,
  local: endpointSchema,
  epoch: uint(0xffffffff),
  clients: uint(1 << 20),
  qps: uint(1 << 24),
})
export interface DaemonSessionInfo {
  readonly id: string
  /** The peer's control-plane URL. */
  readonly url: string
  /** The peer's RoCE endpoint (what sessions.query matches). */
  readonly remote: EndpointRecord
  /** The RoCE endpoint of the process that created the session. */
  readonly local: EndpointRecord
  readonly epoch: number
  /** Local processes taking part. */
  readonly clients: number
  readonly qps: number
}

export const daemonReplySchema = v.variant('op', [
  v.strictObject({ op: v.literal('registered'), clientId: uint(Number.MAX_SAFE_INTEGER) }),
  v.strictObject({ op: v.literal('sessions'), sessions: v.pipe(v.array(sessionInfoSchema), v.maxLength(100_000)) }),
  v.strictObject({ op: v.literal('opened'), reply: peerReplySchema, secret: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/)) }),
  v.strictObject({ op: v.literal('token'), token: text(1024), url }),
  v.strictObject({ op: v.literal('relayed'), reply: peerReplySchema }),
  v.strictObject({ op: v.literal('done') }),
])
export type DaemonReply =
  | { op: 'registered'; clientId: number }
  | { op: 'sessions'; sessions: DaemonSessionInfo[] }
  /** `secret`: the opened session's secret (the creating process keys its QPs with it). */
  | { op: 'opened'; reply: PeerReply; secret: string }
  | { op: 'token'; token: string; url: string }
  | { op: 'relayed'; reply: PeerReply }
  | { op: 'done' }
