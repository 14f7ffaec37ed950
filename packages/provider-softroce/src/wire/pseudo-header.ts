/**
 * The masked IP + UDP pseudo-header that the RoCEv2 ICRC covers (IBTA annex A17.8, as in Linux
 * rxe_icrc.c), folded into a CRC-32 register per packet with a few table steps.
 *
 * After 8 bytes of 0xff standing in for the InfiniBand LRH:
 *   IPv4: 45 ff LEN ID FRAG | ff 11 ffff SRC DST SPORT DPORT | ULEN ffff      (TOS, TTL, checksum = 1s)
 *   IPv6: 6fffffff LEN      | 11 ff SRC DST SPORT DPORT      | ULEN ffff      (TC, flow label, hop = 1s)
 * then the BTH with byte 4 (FECN, BECN, resv6) = ff, then the rest of the packet. The runs between
 * the bars are constant per (family, addresses, ports): each is applied as a precomputed advance
 * map plus a per-context constant, so only the lengths, the IPv4 ID and DF cost table steps.
 */
import { addressBytes } from './address.js'
import { CRC_TABLE, CrcAdvance, crcAdvance, crcRegister } from './crc32.js'
import { WireError, WireErrorCode } from './errors.js'

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

const LRH = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
const START_V4 = crcRegister(0xffffffff, [...LRH, 0x45, 0xff])
const START_V6 = crcRegister(0xffffffff, [...LRH, 0x6f, 0xff, 0xff, 0xff])
const MID_V4 = 4 + 4 + 4 + 4 // TTL, protocol, checksum; src; dst; ports
const MID_V6 = 2 + 16 + 16 + 4 // next header, hop limit; src; dst; ports
let midV4: CrcAdvance | undefined
let midV6: CrcAdvance | undefined

/** Offset of the BTH byte that the ICRC masks (FECN, BECN, resv6). */
export const BTH_MASKED_BYTE = 4

/** The constant parts of the pseudo-header of one (family, addresses, ports). */
export class PseudoHeader {
  private readonly start: number
  private readonly mid: CrcAdvance
  /** Register of the constant middle run fed from a zero register. */
  private readonly midCrc: number

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
    const ports = [srcPort >>> 8, srcPort & 0xff, dstPort >>> 8, dstPort & 0xff]
    if (family === 4) {
      this.start = START_V4
      this.mid = midV4 ??= CrcAdvance.zeros(MID_V4)
      this.midCrc = crcRegister(0, [0xff, 17, 0xff, 0xff, ...s, ...d, ...ports])
    } else {
      this.start = START_V6
      this.mid = midV6 ??= CrcAdvance.zeros(MID_V6)
      this.midCrc = crcRegister(0, [17, 0xff, ...s, ...d, ...ports])
    }
  }

  matches(ip: IpContext): boolean {
    return ip.srcPort === this.srcPort && ip.dstPort === this.dstPort && ip.family === this.family && ip.src === this.src && ip.dst === this.dst
  }

  /**
   * The CRC register after the pseudo-header (up to the BTH) of a datagram whose UDP payload
   * (ICRC included) is `udpPayloadLength` bytes, with IPv4 ID `id` and DF `df` (IPv6: ignored).
   */
  register(udpPayloadLength: number, id: number, df: boolean): number {
    const T = CRC_TABLE
    const udpLen = 8 + udpPayloadLength
    let c = this.start
    if (this.family === 4) {
      const total = 20 + udpLen
      c = (T[(c ^ (total >>> 8)) & 0xff] as number) ^ (c >>> 8)
      c = (T[(c ^ total) & 0xff] as number) ^ (c >>> 8)
      c = (T[(c ^ (id >>> 8)) & 0xff] as number) ^ (c >>> 8)
      c = (T[(c ^ id) & 0xff] as number) ^ (c >>> 8)
      c = (T[(c ^ (df ? 0x40 : 0)) & 0xff] as number) ^ (c >>> 8)
      c = (T[c & 0xff] as number) ^ (c >>> 8)
    } else {
      c = (T[(c ^ (udpLen >>> 8)) & 0xff] as number) ^ (c >>> 8)
      c = (T[(c ^ udpLen) & 0xff] as number) ^ (c >>> 8)
    }
    c = this.mid.apply(c >>> 0) ^ this.midCrc
    c = (T[(c ^ (udpLen >>> 8)) & 0xff] as number) ^ (c >>> 8)
    c = (T[(c ^ udpLen) & 0xff] as number) ^ (c >>> 8)
    c = (T[(c ^ 0xff) & 0xff] as number) ^ (c >>> 8) // UDP checksum, masked
    c = (T[(c ^ 0xff) & 0xff] as number) ^ (c >>> 8)
    return c >>> 0
  }
}

function checkPort(what: string, p: number): void {
  if (!(p >= 0 && p <= 0xffff && Math.floor(p) === p)) {
    throw new WireError(WireErrorCode.ADDRESS, `${what} must be an integer 0..65535, got ${String(p)}`)
  }
}

/** Feeds bytes[start, end) into register `c`, with the BTH's masked byte (offset 4) read as 0xff. */
export function feedMasked(c: number, bytes: Uint8Array, start: number, end: number): number {
  const T = CRC_TABLE
  let r = c
  for (let i = start; i < end; i++) {
    const b = i === BTH_MASKED_BYTE ? 0xff : (bytes[i] as number)
    r = (T[(r ^ b) & 0xff] as number) ^ (r >>> 8)
  }
  return r >>> 0
}

/**
 * What to XOR into a CRC computed over a whole packet view with its real BTH byte 4 to get the
 * CRC with that byte masked to 0xff; `length` is the length of the view the CRC ran over.
 */
export function maskCorrection(byte4: number, length: number): number {
  return byte4 === 0xff ? 0 : crcAdvance(CRC_TABLE[byte4 ^ 0xff] as number, length - BTH_MASKED_BYTE - 1)
}

// Lookup: the few most recently used contexts are compared field by field (no allocation, so a
// fresh IpContext per datagram, e.g. from rinfo, costs a few compares), then a map by key.
const recent: PseudoHeader[] = []
const RECENT_MAX = 8
const byKey = new Map<string, PseudoHeader>()
const BY_KEY_MAX = 4096

/** The (cached) pseudo-header for `ip`. Throws WireError ERR_WIRE_ADDRESS for bad addresses/ports. */
export function pseudoHeader(ip: IpContext): PseudoHeader {
  for (let i = 0; i < recent.length; i++) {
    const ph = recent[i] as PseudoHeader
    if (ph.matches(ip)) {
      if (i > 0) {
        recent[i] = recent[0] as PseudoHeader
        recent[0] = ph
      }
      return ph
    }
  }
  const key = `${ip.family}|${ip.src}|${ip.dst}|${ip.srcPort}|${ip.dstPort}`
  let ph = byKey.get(key)
  if (ph === undefined) {
    if (ip.family !== 4 && ip.family !== 6) {
      throw new WireError(WireErrorCode.ADDRESS, `IP family must be 4 or 6, got ${String(ip.family)}`)
    }
    ph = new PseudoHeader(ip.family, ip.src, ip.dst, ip.srcPort, ip.dstPort)
    if (byKey.size >= BY_KEY_MAX) byKey.clear()
    byKey.set(key, ph)
  }
  recent.unshift(ph)
  if (recent.length > RECENT_MAX) recent.pop()
  return ph
}
