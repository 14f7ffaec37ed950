/**
 * The private data rdma-session puts in rdma_cm's REQ, REP and REJ (after rdma_cm's own header), so
 * that rdma_cm connections can form sessions. Compact and versioned; every message fits the REQ's 56
 * user bytes. Big-endian:
 *
 *   0  magic 'RSCM' (4)   4  version = 1 (1)   5  kind (1)
 *   open    (REQ):  6 traffic class (1), 7 path MTU, IB enum 1..5 = 256..4096 (1)     8 bytes
 *   join    (REQ):  6-7 zero (2), 8 session ID (16), 24 CM join token (30)            54 bytes
 *   accept  (REP):  6-7 zero (2), 8 session ID (16), 24 CM join token (30)            54 bytes
 *   refuse  (REJ):  6 refusal code (1), 7 zero (1)                                    8 bytes
 *
 * Bytes after a message up to the end of the field must be zero (the CM pads with zeros). Private
 * data that does not start with the magic is a plain rdma_cm peer's (rping, perftest …): one lone QP.
 */
import { PATH_MTUS, type PathMtu } from '@rdma-session/provider-interface'
import { CM_JOIN_TOKEN_BYTES } from './cm-join-token.js'

export const CM_MAGIC = Uint8Array.of(0x52, 0x53, 0x43, 0x4d)
export const CM_PRIVATE_DATA_VERSION = 1
/** Room for user private data in a REQ after rdma_cm's header. */
export const CM_REQ_PRIVATE_DATA_BYTES = 56

const KIND = { open: 1, join: 2, accept: 3, refuse: 4 } as const
const SHORT = 8
const LONG = 24 + CM_JOIN_TOKEN_BYTES

/**
 * Why a listener refused a connection (the `refuse` message's code; the REJ reason is 28, consumer
 * defined). Stable: the connecting side turns each into an error with its own code.
 */
export const CmRefusal = {
  /** The private data starts with the magic but is not a well-formed message. */
  MALFORMED: 1,
  /** A version this listener does not speak. */
  VERSION: 2,
  /** No such session, or the token does not verify for it (one answer: no existence oracle). */
  SESSION_NOT_FOUND: 3,
  TOKEN_EXPIRED: 4,
  /** The token's QP budget is spent. */
  TOKEN_EXHAUSTED: 5,
  /** The connection does not come from the session's remote address. */
  REMOTE_MISMATCH: 6,
  /** The listener does not take this (sessions disabled, an encrypted session, a closed listener). */
  NOT_ACCEPTED: 7,
} as const
export type CmRefusalCode = (typeof CmRefusal)[keyof typeof CmRefusal]
const REFUSALS = new Set<number>(Object.values(CmRefusal))

export type CmPrivateMessage =
  | { readonly kind: 'open'; readonly trafficClass: number; readonly mtu: PathMtu }
  | { readonly kind: 'join'; readonly sessionId: string; readonly token: Uint8Array }
  | { readonly kind: 'accept'; readonly sessionId: string; readonly token: Uint8Array }
  | { readonly kind: 'refuse'; readonly code: CmRefusalCode }

/** What private data says: a message, a plain peer's data, or a malformed message (with the refusal to send). */
export type CmDecoded =
  | { readonly plain: false; readonly message: CmPrivateMessage }
  | { readonly plain: true }
  | { readonly plain: false; readonly refusal: CmRefusalCode; readonly reason: string }

export function encodeCmPrivateData(m: CmPrivateMessage): Uint8Array {
  const long = m.kind === 'join' || m.kind === 'accept'
  const b = new Uint8Array(long ? LONG : SHORT)
  b.set(CM_MAGIC, 0)
  b[4] = CM_PRIVATE_DATA_VERSION
  b[5] = KIND[m.kind]
  if (m.kind === 'open') {
    b[6] = m.trafficClass & 0xff
    b[7] = PATH_MTUS.indexOf(m.mtu) + 1
    if (b[7] === 0) throw new TypeError(`path MTU must be one of ${PATH_MTUS.join(', ')}, got ${String(m.mtu)}`)
  }
  else if (m.kind === 'refuse') b[6] = m.code
  else {
    if (!/^[0-9a-f]{32}$/.test(m.sessionId)) throw new TypeError(`a session ID is 32 hex digits, got ${JSON.stringify(m.sessionId)}`)
    if (m.token.length !== CM_JOIN_TOKEN_BYTES) throw new TypeError(`a CM join token is ${CM_JOIN_TOKEN_BYTES} bytes, got ${m.token.length}`)
    b.set(Buffer.from(m.sessionId, 'hex'), 8)
    b.set(m.token, 24)
  }
  return b
}

function zeroFrom(b: Uint8Array, from: number): boolean {
  for (let i = from; i < b.length; i++) if (b[i] !== 0) return false
  return true
}

/** Reads private data from a peer; never throws. */
export function decodeCmPrivateData(data: Uint8Array): CmDecoded {
  if (!(data instanceof Uint8Array) || data.length < 4) return { plain: true }
  for (let i = 0; i < 4; i++) if (data[i] !== CM_MAGIC[i]) return { plain: true }
  const bad = (reason: string): CmDecoded => ({ plain: false, refusal: CmRefusal.MALFORMED, reason })
  if (data.length < SHORT) return bad(`${data.length} bytes, shorter than any message`)
  if (data[4] !== CM_PRIVATE_DATA_VERSION) return { plain: false, refusal: CmRefusal.VERSION, reason: `version ${data[4]}; this end speaks ${CM_PRIVATE_DATA_VERSION}` }
  const kind = data[5]
  if (kind === KIND.open || kind === KIND.refuse) {
    if (!zeroFrom(data, SHORT)) return bad('non-zero padding')
    if (kind === KIND.open) {
      const mtu = PATH_MTUS[data[7]! - 1]
      if (mtu === undefined) return bad(`path MTU code ${data[7]}`)
      return { plain: false, message: { kind: 'open', trafficClass: data[6]!, mtu } }
    }
    if (data[7] !== 0) return bad('non-zero padding')
    const code = data[6]!
    if (!REFUSALS.has(code)) return bad(`unknown refusal code ${code}`)
    return { plain: false, message: { kind: 'refuse', code: code as CmRefusalCode } }
  }
  if (kind === KIND.join || kind === KIND.accept) {
    if (data.length < LONG) return bad(`${data.length} bytes, a ${kind === KIND.join ? 'join' : 'accept'} is ${LONG}`)
    if (data[6] !== 0 || data[7] !== 0 || !zeroFrom(data, LONG)) return bad('non-zero padding')
    const sessionId = Buffer.from(data.subarray(8, 24)).toString('hex')
    const token = Uint8Array.from(data.subarray(24, LONG))
    return { plain: false, message: kind === KIND.join ? { kind: 'join', sessionId, token } : { kind: 'accept', sessionId, token } }
  }
  return bad(`unknown kind ${String(kind)}`)
}
