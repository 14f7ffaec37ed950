/**
 * One message on the mock fabric. RC traffic is modeled at message granularity:
 * a packet stands for a whole message, carries the PSN of its first wire packet
 * and says how many MTU-sized wire packets (and PSNs) it spans.
 */
import type { Opcode } from '@rdma-session/provider-interface'
import { NAK_SYNDROMES } from '@rdma-session/rc-engine'

/** Responses a responder sends back. */
export type ResponseOpcode = 'ACK' | 'NAK' | 'READ_RESPONSE' | 'ATOMIC_ACKNOWLEDGE'
export type PacketOpcode = Opcode | ResponseOpcode

/** Why a NAK was sent (after the AETH syndromes of the IB spec). */
export type NakSyndrome = 'PSN_SEQUENCE_ERROR' | 'RNR' | 'INVALID_REQUEST' | 'REMOTE_ACCESS_ERROR' | 'REMOTE_OPERATIONAL_ERROR'

/** AETH syndrome bytes (the engine's table), reported as `vendorErr` of the failed completion. */
export const NAK_CODES: Readonly<Record<NakSyndrome, number>> = NAK_SYNDROMES

const OPCODE_CODES: Readonly<Record<PacketOpcode, number>> = {
  SEND: 1,
  SEND_WITH_IMM: 2,
  RDMA_WRITE: 3,
  RDMA_WRITE_WITH_IMM: 4,
  RDMA_READ: 5,
  ATOMIC_CMP_AND_SWP: 6,
  ATOMIC_FETCH_AND_ADD: 7,
  ACK: 8,
  NAK: 9,
  READ_RESPONSE: 10,
  ATOMIC_ACKNOWLEDGE: 11,
}

/** True for requests (the requester's opcodes); false for responses. */
export function isRequest(opcode: PacketOpcode): opcode is Opcode {
  return OPCODE_CODES[opcode] < 8
}

/** Approximate RoCEv2 header bytes per wire packet (Ethernet, IP, UDP, BTH, ICRC, FCS), for link accounting. */
export const HEADER_BYTES = 64

export const EMPTY_PAYLOAD: Uint8Array = new Uint8Array(0)

export class Packet {
  remoteAddr = 0
  rkey = 0
  imm: number | undefined = undefined
  syndrome: NakSyndrome | null = null
  /** RNR NAK: how long the requester should wait, in ms. */
  rnrDelayMs = 0
  /** Encryption: key epoch and nonce; `sealed` when `payload` is ciphertext followed by the 16-byte tag. */
  epoch = 0
  nonce: Uint8Array | null = null
  sealed = false

  constructor(
    /** Source and destination hosts, as `address:port`. */
    readonly src: string,
    readonly dst: string,
    readonly srcQpn: number,
    readonly dstQpn: number,
    readonly opcode: PacketOpcode,
    readonly psn: number,
    /** Wire packets (and PSNs) this message spans. */
    readonly packets: number,
    /** Plaintext message length (for an RDMA READ request: the length asked for). */
    readonly length: number,
    public payload: Uint8Array,
  ) {}

  /** A second copy of this packet as it is on the wire (for duplicate faults). */
  clone(): Packet {
    const p = new Packet(this.src, this.dst, this.srcQpn, this.dstQpn, this.opcode, this.psn, this.packets, this.length, this.payload)
    p.remoteAddr = this.remoteAddr
    p.rkey = this.rkey
    p.imm = this.imm
    p.syndrome = this.syndrome
    p.rnrDelayMs = this.rnrDelayMs
    p.epoch = this.epoch
    p.nonce = this.nonce
    p.sealed = this.sealed
    return p
  }
}

/** The header fields an encrypted packet authenticates (the AEAD's additional data). */
export function authenticatedHeader(p: Packet): Buffer {
  const b = Buffer.allocUnsafe(44)
  b.writeUInt8(OPCODE_CODES[p.opcode], 0)
  b.writeUInt8(p.syndrome === null ? 0 : NAK_CODES[p.syndrome], 1)
  b.writeUInt16BE(p.packets & 0xffff, 2)
  b.writeUInt32BE(p.psn, 4)
  b.writeUInt32BE(p.srcQpn, 8)
  b.writeUInt32BE(p.dstQpn, 12)
  b.writeUInt32BE(p.length >>> 0, 16)
  b.writeUInt32BE(p.rkey >>> 0, 20)
  b.writeUInt32BE((p.imm ?? 0) >>> 0, 24)
  b.writeUInt32BE(p.epoch >>> 0, 28)
  b.writeUInt32BE(Math.round(p.rnrDelayMs * 1000) >>> 0, 32)
  b.writeDoubleBE(p.remoteAddr, 36)
  return b
}
