/**
 * RoCEv2 packet codec: BTH + extension headers + payload + pad, as carried in a UDP datagram to
 * port 4791 (IBTA vol. 1 ch. 9, annex A17). The 4-byte ICRC trailer is handled by icrc.ts.
 */
import { allocPacket } from './buffer-slab.js'
import { WireError, WireErrorCode, fastWireError } from './errors.js'
import {
  F_AETH,
  F_ATOMIC_ACK_ETH,
  F_ATOMIC_ETH,
  F_IETH,
  F_IMMDT,
  F_PAYLOAD,
  F_RETH,
  HeaderSize,
  OPCODE_TABLE,
  opcodeName,
  type OpcodeInfo,
} from './opcodes.js'

export { WireError, WireErrorCode, isWireError } from './errors.js'

/** Base Transport Header (12 bytes). */
export interface Bth {
  opcode: number
  /** SE: the responder should raise a solicited event. */
  solicited: boolean
  /** M: APM migration state. */
  migReq: boolean
  /** Bytes of pad after the payload (0..3). Ignored by encodePacket, which computes it. */
  padCount: number
  /** Transport header version; must be 0. */
  tver: number
  pkey: number
  fecn: boolean
  becn: boolean
  /** 24 bits. */
  destQpn: number
  /** A: the requester asks for an acknowledgment. */
  ackReq: boolean
  /** 24 bits. */
  psn: number
}

export interface Reth {
  va: bigint
  rkey: number
  dmaLength: number
}
export interface Aeth {
  /** See aeth.ts (ackSyndrome, parseSyndrome, ...). */
  syndrome: number
  /** 24 bits. */
  msn: number
}
export interface AtomicEth {
  va: bigint
  rkey: number
  swapAdd: bigint
  compare: bigint
}
export interface AtomicAckEth {
  origData: bigint
}

/**
 * A decoded packet, or one to encode. Only the extension headers the opcode defines are read by
 * encodePacket (others are ignored); decodePacket sets exactly those and leaves the rest undefined.
 */
export interface RocePacket {
  bth: Bth
  reth?: Reth
  aeth?: Aeth
  immDt?: number
  atomicEth?: AtomicEth
  atomicAckEth?: AtomicAckEth
  /** Invalidate ETH: the rkey to invalidate. */
  ieth?: number
  /** Decoded: a view into the received buffer, without pad and ICRC. */
  payload: Uint8Array
}

const U64_MAX = 0xffff_ffff_ffff_ffffn
const U32_MASK = 0xffff_ffffn
const EMPTY = new Uint8Array(0)

// ---------------------------------------------------------------------------------------------
// encode

function fieldError(what: string, v: unknown, range: string): WireError {
  return new WireError(WireErrorCode.FIELD, `${what} must be ${range}, got ${String(v)}`)
}

function checkUint(what: string, v: number, max: number): void {
  // Integers in range pass the first test; NaN, fractions, negatives and overflow fail it.
  if (!(v >= 0 && v <= max && Math.floor(v) === v)) throw fieldError(what, v, `an integer 0..${max}`)
}

function checkU64(what: string, v: bigint): void {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw fieldError(what, v, 'a bigint 0..2^64-1')
}

function missing(info: OpcodeInfo, header: string): WireError {
  return new WireError(WireErrorCode.HEADER, `${info.name} needs ${header}, but the packet has none`)
}

function infoFor(opcode: number): OpcodeInfo {
  const info = OPCODE_TABLE[opcode]
  if (info === undefined) throw new WireError(WireErrorCode.OPCODE, `opcode ${opcodeName(opcode)} is not an RC opcode`)
  return info
}

/** Bytes encodePacket will produce for `pkt` (BTH + headers + payload + pad; no ICRC). */
export function encodedLength(pkt: RocePacket): number {
  const info = infoFor(pkt.bth.opcode)
  return info.headerLength + ((pkt.payload.length + 3) & ~3)
}

function put32(out: Uint8Array, o: number, v: number): void {
  out[o] = v >>> 24
  out[o + 1] = v >>> 16
  out[o + 2] = v >>> 8
  out[o + 3] = v
}

function put64(out: Uint8Array, o: number, v: bigint): void {
  put32(out, o, Number(v >> 32n))
  put32(out, o + 4, Number(v & U32_MASK))
}

/**
 * Writes `pkt` into `out` at `offset` and returns the number of bytes written (no ICRC).
 * The pad count is computed from the payload length; pad bytes are zero.
 * Throws WireError (ERR_WIRE_OPCODE, _FIELD, _HEADER, _LENGTH, or _TRUNCATED if `out` is short).
 */
export function encodePacketInto(pkt: RocePacket, out: Uint8Array, offset = 0): number {
  const bth = pkt.bth
  const info = infoFor(bth.opcode)
  const flags = info.flags
  const payload = pkt.payload
  const plen = payload.length
  if (plen > 0 && (flags & F_PAYLOAD) === 0) {
    throw new WireError(WireErrorCode.LENGTH, `${info.name} carries no payload, got ${plen} bytes`)
  }
  const pad = (4 - (plen & 3)) & 3
  const total = info.headerLength + plen + pad
  if (!(offset >= 0 && offset + total <= out.length)) {
    throw new WireError(WireErrorCode.TRUNCATED, `output buffer too small: ${total} bytes needed at offset ${offset}`)
  }
  checkUint('BTH tver', bth.tver, 0xf)
  checkUint('BTH pkey', bth.pkey, 0xffff)
  checkUint('BTH destQpn', bth.destQpn, 0xffffff)
  checkUint('BTH psn', bth.psn, 0xffffff)

  let o = offset
  out[o] = bth.opcode
  out[o + 1] = (bth.solicited ? 0x80 : 0) | (bth.migReq ? 0x40 : 0) | (pad << 4) | bth.tver
  out[o + 2] = bth.pkey >>> 8
  out[o + 3] = bth.pkey
  put32(out, o + 4, (bth.fecn ? 0x80000000 : 0) | (bth.becn ? 0x40000000 : 0) | bth.destQpn)
  put32(out, o + 8, (bth.ackReq ? 0x80000000 : 0) | bth.psn)
  o += HeaderSize.BTH

  if (flags & F_RETH) {
    const r = pkt.reth
    if (r === undefined) throw missing(info, 'RETH')
    checkU64('RETH va', r.va)
    checkUint('RETH rkey', r.rkey, 0xffffffff)
    checkUint('RETH dmaLength', r.dmaLength, 0xffffffff)
    put64(out, o, r.va)
    put32(out, o + 8, r.rkey)
    put32(out, o + 12, r.dmaLength)
    o += HeaderSize.RETH
  }
  if (flags & F_AETH) {
    const a = pkt.aeth
    if (a === undefined) throw missing(info, 'AETH')
    checkUint('AETH syndrome', a.syndrome, 0xff)
    checkUint('AETH msn', a.msn, 0xffffff)
    put32(out, o, ((a.syndrome << 24) | a.msn) >>> 0)
    o += HeaderSize.AETH
  }
  if (flags & F_ATOMIC_ACK_ETH) {
    const a = pkt.atomicAckEth
    if (a === undefined) throw missing(info, 'AtomicAckETH')
    checkU64('AtomicAckETH origData', a.origData)
    put64(out, o, a.origData)
    o += HeaderSize.AtomicAckETH
  }
  if (flags & F_IMMDT) {
    const imm = pkt.immDt
    if (imm === undefined) throw missing(info, 'ImmDt')
    checkUint('ImmDt', imm, 0xffffffff)
    put32(out, o, imm)
    o += HeaderSize.ImmDt
  }
  if (flags & F_ATOMIC_ETH) {
    const a = pkt.atomicEth
    if (a === undefined) throw missing(info, 'AtomicETH')
    checkU64('AtomicETH va', a.va)
    checkUint('AtomicETH rkey', a.rkey, 0xffffffff)
    checkU64('AtomicETH swapAdd', a.swapAdd)
    checkU64('AtomicETH compare', a.compare)
    put64(out, o, a.va)
    put32(out, o + 8, a.rkey)
    put64(out, o + 12, a.swapAdd)
    put64(out, o + 20, a.compare)
    o += HeaderSize.AtomicETH
  }
  if (flags & F_IETH) {
    const r = pkt.ieth
    if (r === undefined) throw missing(info, 'IETH')
    checkUint('IETH rkey', r, 0xffffffff)
    put32(out, o, r)
    o += HeaderSize.IETH
  }
  if (plen > 0) {
    out.set(payload, o)
    o += plen
  }
  for (let i = 0; i < pad; i++) out[o++] = 0
  return o - offset
}

/**
 * Encodes `pkt` as the UDP payload up to, not including, the ICRC: BTH + extension headers +
 * payload + pad to a multiple of 4 (pad count set automatically). Add the ICRC with appendIcrc,
 * or use encodeWithIcrc (icrc.ts) to do both in one allocation. The buffer is carved from a
 * shared 64 KiB slab (like Node's Buffer pool): do not transfer its `.buffer` to a worker.
 */
export function encodePacket(pkt: RocePacket): Buffer {
  const out = allocPacket(encodedLength(pkt))
  encodePacketInto(pkt, out, 0)
  return out
}

// ---------------------------------------------------------------------------------------------
// decode

function get32(u: Uint8Array, o: number): number {
  return (((u[o] as number) << 24) | ((u[o + 1] as number) << 16) | ((u[o + 2] as number) << 8) | (u[o + 3] as number)) >>> 0
}

function get64(u: Uint8Array, o: number): bigint {
  return (BigInt(get32(u, o)) << 32n) | BigInt(get32(u, o + 4))
}

/** Destination QPN of a datagram without decoding it (for demultiplexing); -1 if too short. */
export function peekDestQpn(udpPayload: Uint8Array): number {
  if (udpPayload.length < HeaderSize.BTH) return -1
  return (((udpPayload[5] as number) << 16) | ((udpPayload[6] as number) << 8) | (udpPayload[7] as number)) >>> 0
}

/**
 * Parses a whole RoCEv2 UDP payload, including the trailing 4-byte ICRC (not verified here: see
 * verifyIcrc). The payload is a view into `udpPayload`. Throws only WireError: ERR_WIRE_TRUNCATED,
 * ERR_WIRE_OPCODE, ERR_WIRE_VERSION, ERR_WIRE_LENGTH or ERR_WIRE_PAD; never reads out of bounds.
 */
export function decodePacket(udpPayload: Uint8Array, ackExtension = false): RocePacket {
  const u = udpPayload
  const len = u.length
  if (len < HeaderSize.BTH + HeaderSize.ICRC) {
    throw fastWireError(WireErrorCode.TRUNCATED, `${len} bytes is shorter than BTH + ICRC (16)`)
  }
  const opcode = u[0] as number
  const info = OPCODE_TABLE[opcode]
  if (info === undefined) throw fastWireError(WireErrorCode.OPCODE, `opcode ${opcodeName(opcode)} is not an RC opcode`)
  const b1 = u[1] as number
  const tver = b1 & 0x0f
  if (tver !== 0) throw fastWireError(WireErrorCode.VERSION, `BTH transport version ${tver}, expected 0`)
  const hlen = info.headerLength
  if (len < hlen + HeaderSize.ICRC) {
    throw fastWireError(WireErrorCode.TRUNCATED, `${info.name} needs ${hlen + HeaderSize.ICRC} bytes, got ${len}`)
  }
  if ((len & 3) !== 0) throw fastWireError(WireErrorCode.LENGTH, `packet length ${len} is not a multiple of 4`)
  const padCount = (b1 >>> 4) & 3
  const flags = info.flags
  const room = len - HeaderSize.ICRC - hlen // payload + pad
  if ((flags & F_PAYLOAD) === 0 && !(ackExtension && opcode === 0x11 && padCount === 0)) {
    if (room !== 0) throw fastWireError(WireErrorCode.LENGTH, `${info.name} carries no payload, got ${room} extra bytes`)
    if (padCount !== 0) throw fastWireError(WireErrorCode.PAD, `${info.name} carries no payload, pad count ${padCount}`)
  } else if (padCount > room) {
    throw fastWireError(WireErrorCode.PAD, `pad count ${padCount} exceeds the ${room} payload bytes`)
  }

  const w1 = get32(u, 4)
  const w2 = get32(u, 8)
  const bth: Bth = {
    opcode,
    solicited: (b1 & 0x80) !== 0,
    migReq: (b1 & 0x40) !== 0,
    padCount,
    tver,
    pkey: ((u[2] as number) << 8) | (u[3] as number),
    fecn: (w1 & 0x80000000) !== 0,
    becn: (w1 & 0x40000000) !== 0,
    destQpn: w1 & 0xffffff,
    ackReq: (w2 & 0x80000000) !== 0,
    psn: w2 & 0xffffff,
  }
  let reth: Reth | undefined
  let aeth: Aeth | undefined
  let immDt: number | undefined
  let atomicEth: AtomicEth | undefined
  let atomicAckEth: AtomicAckEth | undefined
  let ieth: number | undefined
  let o = HeaderSize.BTH
  if (flags & F_RETH) {
    reth = { va: get64(u, o), rkey: get32(u, o + 8), dmaLength: get32(u, o + 12) }
    o += HeaderSize.RETH
  }
  if (flags & F_AETH) {
    aeth = { syndrome: u[o] as number, msn: get32(u, o) & 0xffffff }
    o += HeaderSize.AETH
  }
  if (flags & F_ATOMIC_ACK_ETH) {
    atomicAckEth = { origData: get64(u, o) }
    o += HeaderSize.AtomicAckETH
  }
  if (flags & F_IMMDT) {
    immDt = get32(u, o)
    o += HeaderSize.ImmDt
  }
  if (flags & F_ATOMIC_ETH) {
    atomicEth = { va: get64(u, o), rkey: get32(u, o + 8), swapAdd: get64(u, o + 12), compare: get64(u, o + 20) }
    o += HeaderSize.AtomicETH
  }
  if (flags & F_IETH) {
    ieth = get32(u, o)
    o += HeaderSize.IETH
  }
  const payload = room === 0 ? EMPTY : u.subarray(o, o + room - padCount)
  return { bth, reth, aeth, immDt, atomicEth, atomicAckEth, ieth, payload }
}

/** decodePacket that returns the WireError instead of throwing it. */
export function tryDecodePacket(udpPayload: Uint8Array, ackExtension = false): RocePacket | WireError {
  try {
    return decodePacket(udpPayload, ackExtension)
  } catch (err) {
    if (err instanceof WireError) return err
    throw err
  }
}
