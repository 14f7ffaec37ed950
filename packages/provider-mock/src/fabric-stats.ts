/** What the fabric reports: counters of what it did with the packets handed to it, and recorded packets. */
import { ENDPOINT_DROP_REASONS, zeroCounts, type DropReason as EngineDropReason } from '@rdma-session/rc-engine'
import { isRequest, type NakSyndrome, type Packet, type PacketOpcode } from './packet.js'

/** The drop reasons the mock counts (names from the shared vocabulary in @rdma-session/rc-engine, which documents each). */
export const DROP_REASONS = ['fault', 'hostDown', 'unknownHost', ...ENDPOINT_DROP_REASONS, 'unknownEpoch', 'encryptionMismatch'] as const satisfies readonly EngineDropReason[]

/** Why a packet was not delivered. */
export type DropReason = (typeof DROP_REASONS)[number]

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
  return { sent: 0, wirePackets: 0, bytes: 0, delivered: 0, duplicated: 0, delayed: 0, reordered: 0, dropped: zeroCounts(DROP_REASONS) }
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
