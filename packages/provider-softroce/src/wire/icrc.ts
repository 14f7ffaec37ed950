/**
 * RoCEv2 invariant CRC (IBTA annex A17.8), computed exactly as Linux rxe_icrc.c does: CRC-32 over
 * 8 bytes of 0xff (the masked LRH of InfiniBand), the IP header with its variant fields set to
 * ones (IPv4 TOS, TTL, header checksum; IPv6 traffic class, flow label, hop limit), the UDP
 * header with its checksum set to ones, the BTH with byte 4 (FECN/BECN/resv6, "resv8a") set to
 * ones, then the rest of the packet; stored little-endian after the pad.
 *
 * The IPv4 ID, flags (DF), total length, addresses and UDP ports are covered, so the sender must
 * know the header the kernel will write (see the rxe-lab README: IP_PMTUDISC_DO gives ID 0 + DF).
 */
import { crc32 } from 'node:zlib'
import { addressBytes } from './address.js'
import { WireError, WireErrorCode } from './errors.js'
import { HeaderSize } from './opcodes.js'
import { encodePacketInto, encodedLength, type RocePacket } from './packet.js'

/** The IP and UDP header fields a RoCEv2 datagram travels with. */
export interface IpContext {
  family: 4 | 6
  /** Source address as text ('10.0.0.1', 'fd77::1'; an IPv6 '%zone' is ignored). */
  src: string
  dst: string
  srcPort: number
  /** 4791 for RoCEv2. */
  dstPort: number
  /** IPv4 identification (covered by the ICRC). Default 0, what Linux writes with IP_PMTUDISC_DO. */
  ipId?: number
  /** IPv4 don't-fragment flag (covered by the ICRC). Default true. */
  df?: boolean
  /** IPv6 flow label (masked in the ICRC; used by PcapWriter). */
  flowLabel?: number
  /** IPv4 TOS / IPv6 traffic class, i.e. DSCP << 2 | ECN (masked in the ICRC; used by PcapWriter). */
  tos?: number
  /** IPv4 TTL / IPv6 hop limit (masked in the ICRC; used by PcapWriter). Default 64. */
  ttl?: number
}

/** 8 bytes of 0xff standing in for the LRH. */
const LRH_BYTES = 8
// Offsets in the pseudo-header buffer of each family.
const V4 = { ipLen: 10, id: 12, frag: 14, src: 20, dst: 24, udp: 28, bth: 36, size: 48 } as const
const V6 = { ipLen: 12, src: 16, dst: 32, udp: 48, bth: 56, size: 68 } as const

/** The masked pseudo-header of one (family, addresses, ports), filled in per packet. */
class PseudoHeader {
  readonly bytes: Buffer

  constructor(
    readonly family: 4 | 6,
    readonly src: string,
    readonly dst: string,
    readonly srcPort: number,
    readonly dstPort: number,
  ) {
    checkPort('srcPort', srcPort)
    checkPort('dstPort', dstPort)
    const s = addressBytes(family, src)
    const d = addressBytes(family, dst)
    const L = family === 4 ? V4 : V6
    const b = Buffer.alloc(L.size)
    b.fill(0xff, 0, LRH_BYTES)
    if (family === 4) {
      b[8] = 0x45 // version 4, IHL 5
      b[9] = 0xff // TOS (masked)
      b[16] = 0xff // TTL (masked)
      b[17] = 17 // UDP
      b[18] = 0xff // header checksum (masked)
      b[19] = 0xff
    } else {
      b.writeUInt32BE(0x6fffffff, 8) // version 6, traffic class + flow label (masked)
      b[14] = 17 // next header: UDP
      b[15] = 0xff // hop limit (masked)
    }
    b.set(s, L.src)
    b.set(d, L.dst)
    b.writeUInt16BE(srcPort, L.udp)
    b.writeUInt16BE(dstPort, L.udp + 2)
    b.writeUInt16BE(0xffff, L.udp + 6) // UDP checksum (masked)
    this.bytes = b
  }

  matches(ip: IpContext): boolean {
    return ip.src === this.src && ip.dst === this.dst && ip.srcPort === this.srcPort && ip.dstPort === this.dstPort && ip.family === this.family
  }
}

function checkPort(what: string, p: number): void {
  if (!(p >= 0 && p <= 0xffff && Math.floor(p) === p)) {
    throw new WireError(WireErrorCode.ADDRESS, `${what} must be an integer 0..65535, got ${String(p)}`)
  }
}

// Per context object (engines keep one per QP), then by value for fresh objects (per datagram).
const byObject = new WeakMap<IpContext, PseudoHeader>()
const byKey = new Map<string, PseudoHeader>()
const BY_KEY_MAX = 1024

function pseudoHeader(ip: IpContext): PseudoHeader {
  let ph = byObject.get(ip)
  if (ph !== undefined && ph.matches(ip)) return ph
  const key = `${ip.family}|${ip.src}|${ip.dst}|${ip.srcPort}|${ip.dstPort}`
  ph = byKey.get(key)
  if (ph === undefined) {
    ph = new PseudoHeader(ip.family, ip.src, ip.dst, ip.srcPort, ip.dstPort)
    if (byKey.size >= BY_KEY_MAX) byKey.clear()
    byKey.set(key, ph)
  }
  byObject.set(ip, ph)
  return ph
}

/**
 * CRC-32 state after the pseudo-header and BTH of body[0, len) with the given IPv4 ID and DF
 * (ignored for IPv6). `len` excludes the ICRC and is at least the BTH size.
 */
function headerCrc(ph: PseudoHeader, body: Uint8Array, len: number, id: number, df: boolean): number {
  const b = ph.bytes
  const udpLen = 8 + len + HeaderSize.ICRC
  let bth: number
  if (ph.family === 4) {
    const total = 20 + udpLen
    b[V4.ipLen] = total >>> 8
    b[V4.ipLen + 1] = total
    b[V4.id] = id >>> 8
    b[V4.id + 1] = id
    b[V4.frag] = df ? 0x40 : 0
    b[V4.frag + 1] = 0
    b[V4.udp + 4] = udpLen >>> 8
    b[V4.udp + 5] = udpLen
    bth = V4.bth
  } else {
    b[V6.ipLen] = udpLen >>> 8
    b[V6.ipLen + 1] = udpLen
    b[V6.udp + 4] = udpLen >>> 8
    b[V6.udp + 5] = udpLen
    bth = V6.bth
  }
  for (let i = 0; i < HeaderSize.BTH; i++) b[bth + i] = body[i] as number
  b[bth + 4] = 0xff // FECN, BECN, resv6: variant
  return crc32(b)
}

function checkBody(len: number): void {
  if (len < HeaderSize.BTH) throw new WireError(WireErrorCode.TRUNCATED, `a RoCEv2 packet has at least a 12-byte BTH, got ${len} bytes`)
  if (len + HeaderSize.ICRC + 8 + 40 > 0xffff) throw new WireError(WireErrorCode.LENGTH, `${len} bytes do not fit in one IP datagram`)
}

function ipIdOf(ip: IpContext): number {
  const id = ip.ipId ?? 0
  if (!(id >= 0 && id <= 0xffff && Math.floor(id) === id)) {
    throw new WireError(WireErrorCode.FIELD, `ipId must be an integer 0..65535, got ${String(id)}`)
  }
  return id
}

function icrcOf(body: Uint8Array, len: number, ip: IpContext): number {
  checkBody(len)
  const ph = pseudoHeader(ip)
  const c = headerCrc(ph, body, len, ph.family === 4 ? ipIdOf(ip) : 0, ip.df ?? true)
  return len > HeaderSize.BTH ? crc32(body.subarray(HeaderSize.BTH, len), c) : c
}

/** The ICRC of a packet (UDP payload without the ICRC), as a 32-bit number (stored little-endian). */
export function icrc(udpPayloadWithoutIcrc: Uint8Array, ip: IpContext): number {
  return icrcOf(udpPayloadWithoutIcrc, udpPayloadWithoutIcrc.length, ip)
}

/** Writes the ICRC of buf[0, length) at buf[length, length + 4) and returns length + 4. */
export function writeIcrc(buf: Uint8Array, length: number, ip: IpContext): number {
  if (!(length >= 0 && length + HeaderSize.ICRC <= buf.length)) {
    throw new WireError(WireErrorCode.TRUNCATED, `no room for the ICRC after ${length} bytes in a ${buf.length}-byte buffer`)
  }
  const c = icrcOf(buf, length, ip)
  buf[length] = c
  buf[length + 1] = c >>> 8
  buf[length + 2] = c >>> 16
  buf[length + 3] = c >>> 24
  return length + HeaderSize.ICRC
}

/** A new buffer: `buf` followed by its ICRC. */
export function appendIcrc(buf: Uint8Array, ip: IpContext): Buffer {
  const out = Buffer.allocUnsafe(buf.length + HeaderSize.ICRC)
  out.set(buf, 0)
  writeIcrc(out, buf.length, ip)
  return out
}

/** Encodes `pkt` and appends its ICRC in one allocation: the complete UDP payload. */
export function encodeWithIcrc(pkt: RocePacket, ip: IpContext): Buffer {
  const out = Buffer.allocUnsafe(encodedLength(pkt) + HeaderSize.ICRC)
  writeIcrc(out, encodePacketInto(pkt, out, 0), ip)
  return out
}

function storedIcrc(u: Uint8Array): number {
  const n = u.length
  return ((u[n - 4] as number) | ((u[n - 3] as number) << 8) | ((u[n - 2] as number) << 16) | ((u[n - 1] as number) << 24)) >>> 0
}

/** True if the last 4 bytes of a UDP payload are the ICRC of the rest under `ip`. */
export function verifyIcrc(udpPayloadWithIcrc: Uint8Array, ip: IpContext): boolean {
  const len = udpPayloadWithIcrc.length - HeaderSize.ICRC
  if (len < HeaderSize.BTH) return false
  return icrcOf(udpPayloadWithIcrc, len, ip) === storedIcrc(udpPayloadWithIcrc)
}

// --- IPv4 ID search ------------------------------------------------------------------------------
// For equal-length messages CRC-32 is affine: icrc(id) = icrc(0) ^ M·id, where column b of M is
// the CRC difference made by bit b of the ID. M depends only on how many bytes follow the ID,
// i.e. on the packet length, so it is computed once per length (17 CRCs) and kept in reduced
// row-echelon form; each solve is then one CRC plus at most 16 XORs.

interface IdSolver {
  /** Row i: a 32-bit vector with a pivot bit no other row has, and the ID bits that produce it. */
  readonly vec: Uint32Array
  readonly pivot: Uint32Array
  readonly tag: Uint16Array
  readonly rows: number
}
const solvers = new Map<number, IdSolver>()
const SOLVERS_MAX = 256

function idSolver(ph: PseudoHeader, body: Uint8Array, len: number, df: boolean): IdSolver {
  let s = solvers.get(len)
  if (s !== undefined) return s
  const rest = len > HeaderSize.BTH ? body.subarray(HeaderSize.BTH, len) : undefined
  const full = (id: number): number => {
    const c = headerCrc(ph, body, len, id, df)
    return rest ? crc32(rest, c) : c
  }
  const c0 = full(0)
  const vec = new Uint32Array(16)
  const pivot = new Uint32Array(16)
  const tag = new Uint16Array(16)
  let rows = 0
  for (let bit = 0; bit < 16; bit++) {
    let v = (full(1 << bit) ^ c0) >>> 0
    let t = 1 << bit
    for (let r = 0; r < rows; r++) {
      if (v & (pivot[r] as number)) {
        v = (v ^ (vec[r] as number)) >>> 0
        t ^= tag[r] as number
      }
    }
    if (v === 0) continue // dependent (cannot happen for CRC-32: it detects all 16-bit bursts)
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
  solvers.set(len, s)
  return s
}

function solve(udpPayloadWithIcrc: Uint8Array, ip: IpContext, df: boolean): number | undefined {
  const u = udpPayloadWithIcrc
  const len = u.length - HeaderSize.ICRC
  if (len < HeaderSize.BTH) return undefined
  checkBody(len)
  const ph = pseudoHeader(ip)
  if (ph.family !== 4) throw new WireError(WireErrorCode.ADDRESS, 'solveIpv4Id needs an IPv4 context (family 4)')
  const s = idSolver(ph, u, len, df)
  const c = headerCrc(ph, u, len, 0, df)
  let t = ((len > HeaderSize.BTH ? crc32(u.subarray(HeaderSize.BTH, len), c) : c) ^ storedIcrc(u)) >>> 0
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
 * The IPv4 ID that makes the packet's ICRC valid under `ip` (whose ipId is ignored; DF is taken
 * from ip.df, default true), or undefined if none does. For receivers that cannot see the IP
 * header (a UDP socket). Note this checks 16 fewer bits than verifyIcrc: a corrupted packet passes
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
