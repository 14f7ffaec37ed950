/** Brings a session QP from RESET to RTS against its peer QP, with the session's parameters and keys. */
import { AccessFlag, QpState } from '@rdma-session/provider-interface'
import type { QueuePair } from '../queue-pair.js'
import type { QpEncryption, RemoteEndpoint } from '@rdma-session/provider-interface'
import { QP_DEFAULTS } from '@rdma-session/rc-engine'
import { deriveQpKey } from './keys.js'
import type { SessionParams } from './params.js'
import type { QpOfferRecord, QpSpec } from './records.js'

const ALL_ACCESS = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC

/** RC timers and retry counts used for session QPs (IB encodings): the RC defaults every provider uses. */
export const SESSION_QP_TIMERS = QP_DEFAULTS

export interface KeyContext {
  readonly secret: Uint8Array
  readonly sessionId: string
  readonly epoch: number
}

/**
 * What the peer is told about one of our new QPs: its spec, with the rate limit in bytes per
 * second as this side read it (so both ends agree whatever version of the parser the peer has),
 * and its QPN and PSN.
 */
export function offerOf(qp: QueuePair, spec: QpSpec | undefined): QpOfferRecord {
  const given = spec ?? {}
  const qos = given.qos?.rateLimit === undefined ? given.qos : { ...given.qos, rateLimit: qp.qos.rateLimitBps }
  return { spec: qos === undefined ? given : { ...given, qos }, ...qp.endpoint() }
}

export function initQp(qp: QueuePair): void {
  qp.modify({ state: QpState.INIT, accessFlags: ALL_ACCESS, portNum: 1, pkeyIndex: 0 })
}

/** A per-QP UDP source port in the dynamic range, from both QPNs, when the session leaves it to us. */
export function flowSourcePort(params: SessionParams, localQpn: number, remoteQpn: number): number {
  if (params.encapsulation.udpSourcePort !== 0) return params.encapsulation.udpSourcePort
  return 0xc000 | ((localQpn ^ remoteQpn ^ (localQpn >>> 14)) & 0x3fff)
}

export function qpEncryption(keys: KeyContext | null, localQpn: number, remoteQpn: number): QpEncryption | undefined {
  if (keys === null) return undefined
  return {
    suite: 'aes-256-gcm',
    txKey: deriveQpKey(keys.secret, keys.sessionId, localQpn, remoteQpn, keys.epoch),
    rxKey: deriveQpKey(keys.secret, keys.sessionId, remoteQpn, localQpn, keys.epoch),
    epoch: keys.epoch,
  }
}

/** INIT -> RTR -> RTS. */
export function connectQp(qp: QueuePair, remote: RemoteEndpoint, peer: { qpn: number; psn: number }, params: SessionParams, keys: KeyContext | null): void {
  const enc = params.encapsulation
  const encryption = qpEncryption(keys, qp.qpn, peer.qpn)
  qp.modify({
    state: QpState.RTR,
    remote,
    pathMtu: enc.mtu,
    destQpn: peer.qpn,
    rqPsn: peer.psn,
    maxDestRdAtomic: SESSION_QP_TIMERS.maxRdAtomic,
    minRnrTimer: SESSION_QP_TIMERS.minRnrTimer,
    encapsulation: { udpSourcePort: flowSourcePort(params, qp.qpn, peer.qpn), dscp: enc.dscp, ecn: enc.ecn, hopLimit: enc.hopLimit },
    ...(encryption === undefined ? {} : { encryption }),
  })
  qp.modify({
    state: QpState.RTS,
    sqPsn: qp.localPsn,
    timeout: SESSION_QP_TIMERS.timeout,
    retryCnt: SESSION_QP_TIMERS.retryCnt,
    rnrRetry: SESSION_QP_TIMERS.rnrRetry,
    maxRdAtomic: SESSION_QP_TIMERS.maxRdAtomic,
  })
  qp.remoteQpn = peer.qpn
}
