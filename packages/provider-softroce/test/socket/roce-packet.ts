/**
 * Just enough RoCEv2 for the socket interop test, independent of the stack under src/: BTH,
 * RETH, AETH parsing and the ICRC (IBA A17.8, as rxe_icrc.c computes it) over the IP and UDP
 * headers the kernel writes: IPv4 with ID 0 + DF (IP_PMTUDISC_DO), or IPv6.
 */
import { isIPv4 } from 'node:net'

export const ROCE_PORT = 4791
export const Op = { RDMA_WRITE_ONLY: 0x0a, RDMA_READ_REQUEST: 0x0c, RDMA_READ_RESPONSE_ONLY: 0x10, ACK: 0x11 } as const

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  for (let k = 0; k < 8; k++) n = n & 1 ? 0xedb88320 ^ (n >>> 1) : n >>> 1
  return n >>> 0
})
function crc32(b: Uint8Array): number {
  let c = ~0
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

/** 16 bytes of an IPv6 address, or 4 of an IPv4 one. */
export function addressBytes(a: string): Buffer {
  if (isIPv4(a)) return Buffer.from(a.split('.').map(Number))
  const [hi = '', lo] = a.split('::')
  const groups = (s: string): string[] => (s ? s.split(':') : [])
  const h = groups(hi)
  const l = lo === undefined ? [] : groups(lo)
  const all = [...h, ...Array<string>(8 - h.length - l.length).fill('0'), ...l]
  const out = Buffer.alloc(16)
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 2 * i))
  return out
}

/** The GID of an address: IPv4-mapped for IPv4. */
export const gidOf = (a: string): Buffer => (isIPv4(a) ? Buffer.concat([Buffer.from('00000000000000000000ffff', 'hex'), addressBytes(a)]) : addressBytes(a))

/** ICRC of a RoCEv2 packet (`roce` = BTH onwards, without the ICRC) between src:sport and dst:4791. */
export function icrc(src: string, dst: string, sport: number, dport: number, roce: Uint8Array): number {
  const udpLen = 8 + roce.length + 4
  const s = addressBytes(src)
  const d = addressBytes(dst)
  let ip: Buffer
  if (s.length === 4) {
    // version/IHL, TOS (masked), total length, ID 0, DF, TTL (masked), UDP, checksum (masked)
    ip = Buffer.from([0x45, 0xff, 0, 0, 0, 0, 0x40, 0, 0xff, 17, 0xff, 0xff])
    ip.writeUInt16BE(20 + udpLen, 2)
    ip = Buffer.concat([ip, s, d])
  } else {
    // version + traffic class + flow label (masked), payload length, next header UDP, hop limit (masked)
    ip = Buffer.from([0x6f, 0xff, 0xff, 0xff, 0, 0, 17, 0xff])
    ip.writeUInt16BE(udpLen, 4)
    ip = Buffer.concat([ip, s, d])
  }
  const udp = Buffer.alloc(8)
  udp.writeUInt16BE(sport, 0)
  udp.writeUInt16BE(dport, 2)
  udp.writeUInt16BE(udpLen, 4)
  udp.writeUInt16BE(0xffff, 6) // checksum (masked)
  const r = Buffer.from(roce)
  r[4] = 0xff // BTH resv8a (masked)
  return crc32(Buffer.concat([Buffer.alloc(8, 0xff), ip, udp, r]))
}

export interface PacketSpec {
  src: string
  dst: string
  sport: number
  opcode: number
  dqpn: number
  psn: number
  ackReq?: boolean
  reth?: { va: bigint; rkey: number; length: number }
  payload?: Uint8Array
}

/** A whole UDP payload: BTH [+ RETH] [+ payload + pad] + ICRC. */
export function buildPacket(p: PacketSpec): Buffer {
  const payload = p.payload ?? new Uint8Array(0)
  const pad = (4 - (payload.length % 4)) % 4
  const bth = Buffer.alloc(12)
  bth[0] = p.opcode
  bth[1] = pad << 4
  bth.writeUInt16BE(0xffff, 2) // default P_Key
  bth.writeUInt32BE(p.dqpn & 0xffffff, 4)
  bth.writeUInt32BE(((p.ackReq ? 0x80000000 : 0) | (p.psn & 0xffffff)) >>> 0, 8)
  const parts: Buffer[] = [bth]
  if (p.reth) {
    const reth = Buffer.alloc(16)
    reth.writeBigUInt64BE(p.reth.va, 0)
    reth.writeUInt32BE(p.reth.rkey >>> 0, 8)
    reth.writeUInt32BE(p.reth.length, 12)
    parts.push(reth)
  }
  parts.push(Buffer.from(payload), Buffer.alloc(pad))
  const roce = Buffer.concat(parts)
  const ic = Buffer.alloc(4)
  ic.writeUInt32LE(icrc(p.src, p.dst, p.sport, ROCE_PORT, roce))
  return Buffer.concat([roce, ic])
}

export interface ParsedPacket {
  opcode: number
  dqpn: number
  psn: number
  /** AETH syndrome (ACK, read response first/last/only). 0x00-0x1f = ACK. */
  syndrome?: number
  msn?: number
  payload: Buffer
  icrc: number
}

/** Parse what rxe sends us: BTH, AETH for ACK and READ_RESPONSE_ONLY, payload without pad. */
export function parsePacket(d: Buffer): ParsedPacket {
  const opcode = d[0]!
  const pad = (d[1]! >> 4) & 3
  const out: ParsedPacket = { opcode, dqpn: d.readUInt32BE(4) & 0xffffff, psn: d.readUInt32BE(8) & 0xffffff, payload: Buffer.alloc(0), icrc: d.readUInt32LE(d.length - 4) }
  let off = 12
  if (opcode === Op.ACK || opcode === Op.RDMA_READ_RESPONSE_ONLY) {
    out.syndrome = d[12]!
    out.msn = d.readUInt32BE(12) & 0xffffff
    off = 16
  }
  out.payload = d.subarray(off, d.length - 4 - pad)
  return out
}
