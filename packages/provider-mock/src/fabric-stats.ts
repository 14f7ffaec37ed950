/** What the fabric reports: counters of what it did with the packets handed to it, and recorded packets. */
import { isRequest, type NakSyndrome, type Packet, type PacketOpcode } from './packet.js'

/** Why a packet was not delivered. */
export type DropReason =
  /** A fault rule dropped it. */
  | 'fault'
  /** The source or destination host was killed (fabric.killHost). */
  | 'host-down'
  /** No host has the destination address and port. */
  | 'unknown-host'
  /** The destination host has no QP with that number (never created, or destroyed). */
  | 'unknown-qpn'
  /** The destination QP is in RESET, INIT or ERR, where it ignores packets. */
  | 'qp-not-ready'
  /** The packet did not come from the QP's connected peer (address, port and QPN). */
  | 'unexpected-source'
  /** Authentication failed: wrong key, or tampered header or payload. */
  | 'decrypt-failure'
  /** Encrypted under an epoch the receiver has no key for (not yet installed, or past the rekey grace period). */
  | 'unknown-epoch'
  /** Plaintext to an encrypted QP, or ciphertext to a plaintext QP. */
  | 'encryption-mismatch'
  /** An ACK, NAK or READ/atomic response for a PSN the requester has not transmitted (forged or corrupt). */
  | 'ghost-ack'
  /** A duplicate READ or atomic request that matches none of the responder's saved requests. */
  | 'unmatched-duplicate'

export const DROP_REASONS: readonly DropReason[] = [
  'fault',
  'host-down',
  'unknown-host',
  'unknown-qpn',
  'qp-not-ready',
  'unexpected-source',
  'decrypt-failure',
  'unknown-epoch',
  'encryption-mismatch',
  'ghost-ack',
  'unmatched-duplicate',
]

export interface FabricStats {
  /** Packets handed to the fabric by hosts (messages; see `wirePackets` for MTU-sized packets). */
  sent: number
  /** MTU-sized wire packets those messages span. */
  wirePackets: number
  /** Payload bytes handed to the fabric (as carried, so ciphertext and tags for encrypted QPs). */
  bytes: number
  /** Packets a destination QP accepted. */
  delivered: number
  duplicated: number
  delayed: number
  reordered: number
  dropped: Record<DropReason, number>
}

export function emptyStats(): FabricStats {
  const dropped = {} as Record<DropReason, number>
  for (const r of DROP_REASONS) dropped[r] = 0
  return { sent: 0, wirePackets: 0, bytes: 0, delivered: 0, duplicated: 0, delayed: 0, reordered: 0, dropped }
}

export type FaultKind = 'drop' | 'delay' | 'duplicate' | 'reorder'

/** A packet as a host put it on the fabric (recorded with `fabric.record()`, or passed to `fabric.on('packet')`). */
export interface RecordedPacket {
  /** Milliseconds since the fabric was created. */
  readonly time: number
  /** Source and destination hosts, as `address:port`. */
  readonly src: string
  readonly dst: string
  readonly srcQpn: number
  readonly dstQpn: number
  readonly kind: 'request' | 'response'
  readonly opcode: PacketOpcode
  /** The PSN of the message's first wire packet. */
  readonly psn: number
  /** MTU-sized wire packets (and PSNs) the message spans. */
  readonly packets: number
  /** Plaintext message length (an RDMA READ request: the length asked for). */
  readonly length: number
  /** The bytes carried: ciphertext plus 16-byte tag when encrypted; atomics carry their two 8-byte operands. */
  readonly payload: Uint8Array
  readonly encrypted: boolean
  /** Key epoch and 96-bit AES-GCM nonce of an encrypted packet (null when plaintext). */
  readonly epoch: number
  readonly nonce: Uint8Array | null
  readonly remoteAddr: number
  readonly rkey: number
  readonly imm: number | undefined
  readonly syndrome: NakSyndrome | null
  /** Faults applied to this packet, if any. */
  readonly faults: readonly FaultKind[]
}

/** The public view of a packet on the fabric. */
export function recordedPacket(p: Packet, time: number, faults: readonly FaultKind[]): RecordedPacket {
  return {
    time,
    src: p.src,
    dst: p.dst,
    srcQpn: p.srcQpn,
    dstQpn: p.dstQpn,
    kind: isRequest(p.opcode) ? 'request' : 'response',
    opcode: p.opcode,
    psn: p.psn,
    packets: p.packets,
    length: p.length,
    payload: p.payload,
    encrypted: p.sealed,
    epoch: p.epoch,
    nonce: p.nonce,
    remoteAddr: p.remoteAddr,
    rkey: p.rkey,
    imm: p.imm,
    syndrome: p.syndrome,
    faults,
  }
}
