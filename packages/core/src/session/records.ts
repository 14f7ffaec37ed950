/**
 * The records two session managers exchange. They are plain JSON (keys in
 * base64) so the in-process link and the ws control plane carry the same thing.
 */
import type { PathMtu } from '@rdma-session/provider-interface'
import type { RemoteRegion } from '../memory-region.js'
import type { QosSpec } from './qos.js'
import type { SessionParams } from './params.js'

export interface EndpointRecord {
  readonly address: string
  readonly port: number
  /** The UDP source port of all the endpoint's packets, when fixed (DeviceInfo.sourcePort). */
  readonly sourcePort?: number
  /** Transport extensions the endpoint's device announces (DeviceInfo.extensions). */
  readonly extensions?: readonly string[]
}

export interface QpCapsRecord {
  readonly maxSendWr?: number
  readonly maxRecvWr?: number
  readonly maxSendSge?: number
  readonly maxRecvSge?: number
  readonly maxInlineData?: number
}

export interface QpSpec {
  readonly qos?: QosSpec
  readonly caps?: QpCapsRecord
}

/** One QP of a request: its spec and the requester's end of the connection. */
export interface QpOfferRecord {
  readonly spec: QpSpec
  readonly qpn: number
  readonly psn: number
}

export interface QpAnswerRecord {
  readonly qpn: number
  readonly psn: number
}

export interface OpenSessionRequest {
  readonly type: 'open-session'
  readonly sessionId: string
  readonly from: EndpointRecord
  readonly params: SessionParams
  /** Largest MTU the requester supports. */
  readonly maxMtu: PathMtu
  /** base64 session secret when encrypted (the control plane replaces this with a key exchange). */
  readonly secret?: string
  readonly qps: readonly QpOfferRecord[]
  readonly regions: Readonly<Record<string, RemoteRegion>>
}

export interface OpenSessionReply {
  readonly type: 'open-session'
  readonly from: EndpointRecord
  readonly mtu: PathMtu
  readonly encryption: 'aes-256-gcm' | 'none'
  readonly qps: readonly QpAnswerRecord[]
  readonly regions: Readonly<Record<string, RemoteRegion>>
}

export interface AddQpsRequest {
  readonly type: 'add-qps'
  readonly sessionId: string
  readonly from: EndpointRecord
  readonly qps: readonly QpOfferRecord[]
}

export interface AddQpsReply {
  readonly type: 'add-qps'
  readonly qps: readonly QpAnswerRecord[]
}

export interface RemoveQpRequest {
  readonly type: 'remove-qp'
  readonly sessionId: string
  readonly from: EndpointRecord
  /** The QPN on the receiving side. */
  readonly qpn: number
  /** Set when the sender's end failed (entered ERR on its own): why, e.g. 'RETRY_EXC_ERR'. */
  readonly failure?: string
}

export interface CloseSessionRequest {
  readonly type: 'close-session'
  readonly sessionId: string
  readonly from: EndpointRecord
  readonly reason: string
}

export interface RekeyRequest {
  readonly type: 'rekey'
  readonly sessionId: string
  readonly from: EndpointRecord
  readonly epoch: number
}

/** Another connection or process asks to take part in a session, with a join token. */
export interface JoinSessionRequest {
  readonly type: 'join-session'
  readonly sessionId: string
  /** The joiner's RoCE endpoint: on the session's remote host (same address). */
  readonly from: EndpointRecord
  /** A PASETO v4.local token, `v4.local.<payload>.<footer>` (the joiner keeps the key part). */
  readonly token: string
}

export interface JoinSessionReply {
  readonly type: 'join-session'
  readonly from: EndpointRecord
  readonly params: SessionParams
  readonly epoch: number
  readonly regions: Readonly<Record<string, RemoteRegion>>
}

export interface AckReply {
  readonly type: 'ack'
}

export type PeerRequest = OpenSessionRequest | AddQpsRequest | RemoveQpRequest | CloseSessionRequest | RekeyRequest | JoinSessionRequest
export type PeerReply = OpenSessionReply | AddQpsReply | AckReply | JoinSessionReply

export interface ErrorRecord {
  readonly code: string
  readonly message: string
  readonly details?: Record<string, unknown>
}

/** What travels back: a reply or an error with a stable code. */
export type PeerResult = { readonly ok: true; readonly reply: PeerReply } | { readonly ok: false; readonly error: ErrorRecord }

export function endpointKey(e: EndpointRecord): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`
}
