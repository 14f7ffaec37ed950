/**
 * RoCEv2 invariant CRC (IBTA annex A17.8), exactly as Linux rxe_icrc.c computes it: CRC-32 over
 * 8 bytes of 0xff (the masked LRH), the IP header with its variant fields set to ones (IPv4 TOS,
 * TTL, header checksum; IPv6 traffic class, flow label, hop limit), the UDP header with its
 * checksum set to ones, the BTH with byte 4 (FECN/BECN/resv6, "resv8a") set to ones, then the
 * rest of the packet; stored little-endian after the pad.
 *
 * The IPv4 ID, flags (DF), total length, addresses and UDP ports are covered, so a sender must
 * know the header the kernel will write (rxe-lab README: IP_PMTUDISC_DO gives ID 0 + DF).
 *
 * Cost per packet: ~30 table steps for the pseudo-header and BTH (see pseudo-header.ts) and one
 * CRC-32 call over the packet (crc32-engine.ts: the helper's or zlib's), without copying it.
 */
import { crc32 } from './crc32-engine.js'
import { allocPacket } from './buffer-slab.js'
import { CRC32_RESIDUE, crcAdvance, crcRegister } from './crc32.js'
import { WireError, WireErrorCode } from './errors.js'
import { HeaderSize, OPCODE_TABLE } from './opcodes.js'
import { encodePacketInto, encodedLength, type RocePacket } from './packet.js'
import { BTH_MASKED_BYTE, feedMasked, maskCorrection, pseudoHeader, type IpContext, type PseudoHeader } from './pseudo-header.js'

export type { IpContext } from './pseudo-header.js'

const ICRC = HeaderSize.ICRC
const BTH = HeaderSize.BTH
const PAD = new Uint8Array(3)
/** Packets up to this many bytes get their CRC from table steps here rather than a crc32 call. */
const SMALL_CRC = 96

function ipIdOf(ip: IpContext): number {
  const id = ip.ipId ?? 0
  if (!(id >= 0 && id <= 0xffff && Math.floor(id) === id)) {
    throw new WireError(WireErrorCode.FIELD, `ipId must be an integer 0..65535, got ${String(id)}`)
  }
  return id
}

/** Checks the length of a packet without its ICRC. */
function checkLength(len: number): void {
  if (len < BTH) throw new WireError(WireErrorCode.TRUNCATED, `a RoCEv2 packet has at least a 12-byte BTH, got ${len} bytes`)
  if (len + ICRC + 8 + 40 > 0xffff) throw new WireError(WireErrorCode.LENGTH, `${len} bytes do not fit in one IP datagram`)
}

/** CRC-32 of pseudo-header + `view` (the whole view, BTH byte 4 masked) for a UDP payload of udpLength bytes. */
function crcOfView(ph: PseudoHeader, view: Uint8Array, udpLength: number, id: number, df: boolean): number {
  // A short packet (ACKs, small SENDs) is cheaper in table steps than in a crc32 call.
  if (view.length <= SMALL_CRC) return ~feedMasked(ph.register(udpLength, id, df), view, 0, view.length) >>> 0
  const start = ~ph.register(udpLength, id, df) >>> 0
  return (crc32(view, start) ^ maskCorrection(view[BTH_MASKED_BYTE] as number, view.length)) >>> 0
}

function icrcOf(buf: Uint8Array, len: number, ip: IpContext): number {
  checkLength(len)
  const ph = pseudoHeader(ip)
  const view = len === buf.length ? buf : buf.subarray(0, len)
  return crcOfView(ph, view, len + ICRC, ph.family === 4 ? ipIdOf(ip) : 0, ip.df ?? true)
}

function putLE(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v
  buf[at + 1] = v >>> 8
  buf[at + 2] = v >>> 16
  buf[at + 3] = v >>> 24
}

/** The ICRC of a packet (UDP payload without the ICRC), as a 32-bit number (stored little-endian). */
export function icrc(udpPayloadWithoutIcrc: Uint8Array, ip: IpContext): number {
  return icrcOf(udpPayloadWithoutIcrc, udpPayloadWithoutIcrc.length, ip)
}

/** Writes the ICRC of buf[0, length) at buf[length, length + 4) and returns length + 4. */
export function writeIcrc(buf: Uint8Array, length: number, ip: IpContext): number {
  if (!(length >= 0 && length + ICRC <= buf.length)) {
    throw new WireError(WireErrorCode.TRUNCATED, `no room for the ICRC after ${length} bytes in a ${buf.length}-byte buffer`)
  }
  putLE(buf, length, icrcOf(buf, length, ip))
  return length + ICRC
}

/**
 * Writes at `out[at, at + 4)` the ICRC of the packet that is `parts` laid end to end (UDP payload
 * without the ICRC, `length` bytes in all; the BTH in `parts[0]`). The parts are not copied: a
 * sender can hand headers, the payload views and the trailer to one sendmsg.
 */
export function writeIcrcOfParts(parts: readonly Uint8Array[], length: number, ip: IpContext, out: Uint8Array, at: number): void {
  checkLength(length)
  const first = parts[0]
  if (first === undefined || first.length <= BTH_MASKED_BYTE) {
    throw new WireError(WireErrorCode.TRUNCATED, 'the first part of a packet must hold the BTH')
  }
  const ph = pseudoHeader(ip)
  const register = ph.register(length + ICRC, ph.family === 4 ? ipIdOf(ip) : 0, ip.df ?? true)
  if (length <= SMALL_CRC) {
    let r = feedMasked(register, first, 0, first.length)
    for (let i = 1; i < parts.length; i++) r = crcRegister(r, parts[i]!)
    putLE(out, at, ~r >>> 0)
    return
  }
  let c = ~register >>> 0
  for (const p of parts) if (p.length > 0) c = crc32(p, c)
  putLE(out, at, (c ^ maskCorrection(first[BTH_MASKED_BYTE] as number, length)) >>> 0)
}

/** A new buffer: `buf` followed by its ICRC. */
export function appendIcrc(buf: Uint8Array, ip: IpContext): Buffer {
  const out = allocPacket(buf.length + ICRC)
  out.set(buf, 0)
  writeIcrc(out, buf.length, ip)
  return out
}

/**
 * Encodes `pkt` and appends its ICRC in one allocation: the complete UDP payload. The CRC runs
 * over the headers just written and then the caller's payload directly.
 */
export function encodeWithIcrc(pkt: RocePacket, ip: IpContext): Buffer {
  const out = allocPacket(encodedLength(pkt) + ICRC)
  const len = encodePacketInto(pkt, out, 0)
  checkLength(len)
  const ph = pseudoHeader(ip)
  const hlen = (OPCODE_TABLE[pkt.bth.opcode] as { headerLength: number }).headerLength
  const plen = pkt.payload.length
  let c = feedMasked(ph.register(len + ICRC, ph.family === 4 ? ipIdOf(ip) : 0, ip.df ?? true), out, 0, hlen)
  if (plen > 0) c = ~crc32(pkt.payload, ~c >>> 0) >>> 0
  c = crcRegister(c, PAD, 0, len - hlen - plen)
  putLE(out, len, ~c >>> 0)
  return out
}

/** True if the last 4 bytes of a UDP payload are the ICRC of the rest under `ip`. */
export function verifyIcrc(udpPayloadWithIcrc: Uint8Array, ip: IpContext): boolean {
  const u = udpPayloadWithIcrc
  if (u.length < BTH + ICRC) return false
  checkLength(u.length - ICRC)
  const ph = pseudoHeader(ip)
  // A message followed by its own CRC always has the same CRC: no need to split off the ICRC.
  return crcOfView(ph, u, u.length, ph.family === 4 ? ipIdOf(ip) : 0, ip.df ?? true) === CRC32_RESIDUE
}

// --- IPv4 ID search ------------------------------------------------------------------------------
// The CRC over a whole packet (ICRC included) is affine in the ID: crc(id) = crc(0) ^ M·id, and
// the packet is valid when crc(id) = CRC32_RESIDUE. Column b of M is the register difference that
// bit b of the ID makes at the end of the pseudo-header, advanced over the packet's length, so M
// depends only on the length: it is built per length (16 advance maps, no CRC over the data) and
// kept in reduced row-echelon form. A solve is one CRC plus at most 16 XORs.

interface IdSolver {
  /** Row r: a 32-bit vector whose pivot bit no other row has, and the ID bits that produce it. */
  readonly vec: Uint32Array
  readonly pivot: Uint32Array
  readonly tag: Uint16Array
  readonly rows: number
}
const solvers = new Map<number, IdSolver>()
const SOLVERS_MAX = 1024

function idSolver(ph: PseudoHeader, length: number): IdSolver {
  let s = solvers.get(length)
  if (s !== undefined) return s
  const r0 = ph.register(length, 0, true)
  const vec = new Uint32Array(16)
  const pivot = new Uint32Array(16)
  const tag = new Uint16Array(16)
  let rows = 0
  for (let bit = 0; bit < 16; bit++) {
    let v = crcAdvance((ph.register(length, 1 << bit, true) ^ r0) >>> 0, length)
    let t = 1 << bit
    for (let r = 0; r < rows; r++) {
      if (v & (pivot[r] as number)) {
        v = (v ^ (vec[r] as number)) >>> 0
        t ^= tag[r] as number
      }
    }
    if (v === 0) continue // dependent: cannot happen, CRC-32 detects every 16-bit burst
    const p = (0x80000000 >>> Math.clz32(v)) >>> 0
    for (let r = 0; r < rows; r++) {
      if ((vec[r] as number) & p) {
        vec[r] = (vec[r] as number) ^ v
        tag[r] = (tag[r] as number) ^ t
      }
    }
    vec[rows] = v
    pivot[rows] = p
    tag[rows] = t
    rows++
  }
  s = { vec, pivot, tag, rows }
  if (solvers.size >= SOLVERS_MAX) solvers.clear()
  solvers.set(length, s)
  return s
}

function solve(u: Uint8Array, ip: IpContext, df: boolean): number | undefined {
  if (u.length < BTH + ICRC) return undefined
  checkLength(u.length - ICRC)
  const ph = pseudoHeader(ip)
  if (ph.family !== 4) throw new WireError(WireErrorCode.ADDRESS, 'solveIpv4Id needs an IPv4 context (family 4)')
  let t = (crcOfView(ph, u, u.length, 0, df) ^ CRC32_RESIDUE) >>> 0
  if (t === 0) return 0
  const s = idSolver(ph, u.length)
  let id = 0
  for (let r = 0; r < s.rows; r++) {
    if (t & (s.pivot[r] as number)) {
      t = (t ^ (s.vec[r] as number)) >>> 0
      id ^= s.tag[r] as number
    }
  }
  return t === 0 ? id : undefined
}

/**
 * The IPv4 ID that makes the packet's ICRC valid under `ip` (its ipId is ignored; DF is taken
 * from ip.df, default true), or undefined if none does. For receivers that cannot see the IP
 * header (a UDP socket). This checks 16 fewer bits than verifyIcrc: a corrupted packet passes
 * with probability 2^-16.
 */
export function solveIpv4Id(udpPayloadWithIcrc: Uint8Array, ipMinusId: IpContext | Omit<IpContext, 'ipId'>): number | undefined {
  return solve(udpPayloadWithIcrc, ipMinusId as IpContext, ipMinusId.df ?? true)
}

/** Like solveIpv4Id, but if ip.df is not given, tries DF set and then DF clear. */
export function solveIpv4Header(
  udpPayloadWithIcrc: Uint8Array,
  ipMinusId: IpContext | Omit<IpContext, 'ipId'>,
): { ipId: number; df: boolean } | undefined {
  const ip = ipMinusId as IpContext
  for (const df of ip.df === undefined ? [true, false] : [ip.df]) {
    const id = solve(udpPayloadWithIcrc, ip, df)
    if (id !== undefined) return { ipId: id, df }
  }
  return undefined
}

// --- IPv4 IDs of UDP GSO segments ------------------------------------------------------------------
// A UDP GSO message leaves as datagrams whose IPv4 IDs count up from the message's: 0, 1, 2, ...
// from an unconnected IP_PMTUDISC_DO socket (Linux's inet_gso_segment numbers the segments). The
// ICRC covers the ID, so segment k's ICRC must be the one for ID k. Since the CRC is affine in the
// ID, that is the ICRC computed for ID 0 XOR a difference that depends only on the ID and the
// datagram's length: the register difference ID bit b makes at the end of the pseudo-header,
// advanced over the packet (without its ICRC). Built per length (16 advance maps) and cached.

const idDeltas = new Map<number, Uint32Array>()
const DELTAS_MAX = 1024

/**
 * The XOR that turns the ICRC (as the number stored little-endian) of an IPv4 datagram of
 * `udpLength` bytes (UDP payload, ICRC included) computed for ID 0 into the ICRC for ID `id`,
 * with `ip`'s DF (default set). Independent of the addresses and ports.
 */
export function ipv4IdIcrcDelta(ip: IpContext, udpLength: number, id: number): number {
  if (!(id >= 0 && id <= 0xffff && Math.floor(id) === id)) {
    throw new WireError(WireErrorCode.FIELD, `ipId must be an integer 0..65535, got ${String(id)}`)
  }
  checkLength(udpLength - ICRC)
  if (id === 0) return 0
  let basis = idDeltas.get(udpLength)
  if (basis === undefined) {
    const ph = pseudoHeader({ ...ip, family: 4 })
    const df = ip.df ?? true
    const r0 = ph.register(udpLength, 0, df)
    basis = new Uint32Array(16)
    for (let bit = 0; bit < 16; bit++) basis[bit] = crcAdvance((ph.register(udpLength, 1 << bit, df) ^ r0) >>> 0, udpLength - ICRC)
    if (idDeltas.size >= DELTAS_MAX) idDeltas.clear()
    idDeltas.set(udpLength, basis)
  }
  let d = 0
  for (let bit = 0, k = id; k !== 0; bit++, k >>>= 1) if (k & 1) d ^= basis[bit] as number
  return d >>> 0
}

/** XORs ipv4IdIcrcDelta into the ICRC in the last 4 bytes of `icrcHolder` (little-endian). */
export function patchIcrc(icrcHolder: Uint8Array, delta: number): void {
  const at = icrcHolder.length - ICRC
  icrcHolder[at] = (icrcHolder[at] as number) ^ (delta & 0xff)
  icrcHolder[at + 1] = (icrcHolder[at + 1] as number) ^ ((delta >>> 8) & 0xff)
  icrcHolder[at + 2] = (icrcHolder[at + 2] as number) ^ ((delta >>> 16) & 0xff)
  icrcHolder[at + 3] = (icrcHolder[at + 3] as number) ^ (delta >>> 24)
}

/**
 * The running CRC-32 (zlib's contract) after the pseudo-header of a datagram of `udpLength` bytes
 * (UDP payload, ICRC included) with IPv4 ID 0: continuing it over the packet (BTH byte 4 set to
 * ones) gives the ICRC. For the helper's run framing (native/roce_run.c).
 */
export function icrcSeed(ip: IpContext, udpLength: number): number {
  checkLength(udpLength - ICRC)
  const ph = pseudoHeader(ip)
  return ~ph.register(udpLength, 0, ip.df ?? true) >>> 0
}

/** ipv4IdIcrcDelta's 16 per-bit differences for this length (cached; do not modify). */
export function ipv4IdBasis(ip: IpContext, udpLength: number): Uint32Array {
  ipv4IdIcrcDelta(ip, udpLength, 1)
  return idDeltas.get(udpLength)!
}
