/** What a CM counts: MADs sent and received by type, and every MAD it does not act on, by reason. */
import type { CmCodecReason, CmMessageType } from './cm-messages.js'
import type { UdDropReason } from '../ud/ud-qp.js'

export type CmDropReason =
  | CmCodecReason
  | `ud${Capitalize<UdDropReason>}`
  /** No connection has the communication ID the MAD names (or the peer's ID does not match). */
  | 'unknownCommId'
  /** The MAD is valid but not expected in the connection's state (out-of-state). */
  | 'wrongState'
  /** From an address other than the connection's peer. */
  | 'wrongSource'
  /** A REQ whose private data is not an rdma_cm header for this device (answered with a REJ). */
  | 'badPrivateData'
  /** A REQ for a service ID nobody listens on (answered with REJ invalid service ID). */
  | 'noListener'
  /** A REQ whose primary path GID is not its sender's address (answered with REJ invalid GID). */
  | 'badGid'
  /** A REQ for a transport other than RC (answered with REJ invalid transport type). */
  | 'unsupportedTransport'
  /** A REQ while the CM already holds maxConnections connections (answered with REJ no resources). */
  | 'tooManyConnections'

export const CM_DROP_REASONS: readonly CmDropReason[] = [
  'truncated', 'badBaseVersion', 'notCmClass', 'badClassVersion', 'badMethod', 'badAttribute', 'badField',
  'udMalformed', 'udBadPkey', 'udBadQkey',
  'unknownCommId', 'wrongState', 'wrongSource', 'badPrivateData', 'noListener', 'badGid', 'unsupportedTransport', 'tooManyConnections',
]

const TYPES: readonly CmMessageType[] = ['REQ', 'MRA', 'REJ', 'REP', 'RTU', 'DREQ', 'DREP']

const zero = <K extends string>(keys: readonly K[]): Record<K, number> => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>

export interface CmCountersSnapshot {
  readonly sent: Readonly<Record<CmMessageType, number>>
  readonly received: Readonly<Record<CmMessageType, number>>
  readonly drops: Readonly<Record<CmDropReason, number>>
  /** Half-open passive connections evicted because a listener's backlog was full. */
  readonly backlogEvictions: number
  /** Requests and replies sent again after their timeout. */
  readonly retransmits: number
}

export class CmCounters {
  readonly sent = zero(TYPES)
  readonly received = zero(TYPES)
  readonly drops = zero(CM_DROP_REASONS)
  backlogEvictions = 0
  retransmits = 0

  drop(reason: CmDropReason): void {
    this.drops[reason]++
  }

  /** MADs dropped, all reasons. */
  get dropped(): number {
    let n = 0
    for (const r of CM_DROP_REASONS) n += this.drops[r]
    return n
  }

  snapshot(): CmCountersSnapshot {
    return { sent: { ...this.sent }, received: { ...this.received }, drops: { ...this.drops }, backlogEvictions: this.backlogEvictions, retransmits: this.retransmits }
  }
}
