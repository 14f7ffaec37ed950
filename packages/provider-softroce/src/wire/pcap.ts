/**
 * PcapWriter: RoCEv2 datagrams to a classic pcap file, with synthesized IPv4/IPv6 and UDP headers
 * so Wireshark/tshark decode them (UDP port 4791 -> InfiniBand; `-d udp.port==4791,infiniband`
 * forces it for other ports). Writes are buffered and flushed synchronously, so nothing written
 * before close() (or before the process exits) is lost.
 */
import fs from 'node:fs'
import { addressBytes } from './address.js'
import { WireError, WireErrorCode } from './errors.js'
import type { IpContext } from './icrc.js'

/** LINKTYPE_RAW: each record starts with an IPv4 or IPv6 header. */
export const LINKTYPE_RAW = 101
/** LINKTYPE_ETHERNET: each record starts with a 14-byte Ethernet header (made-up MACs). */
export const LINKTYPE_ETHERNET = 1

export interface PcapWriterOptions {
  /** 'raw' (default, LINKTYPE_RAW) or 'ethernet' (for tools that only read Ethernet captures). */
  linkType?: 'raw' | 'ethernet'
}

/** Capture files are readable by their owner only. */
const CAPTURE_MODE = 0o600
const PCAP_MAGIC_US = 0xa1b2c3d4
const SNAPLEN = 262144
const CHUNK = 64 * 1024
const ETH_SRC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01]
const ETH_DST = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02]

/** One's-complement sum of 16-bit big-endian words (odd tail padded with 0), not yet folded. */
function sum16(b: Uint8Array, start: number, end: number, acc: number): number {
  let s = acc
  let i = start
  for (; i + 1 < end; i += 2) s += ((b[i] as number) << 8) | (b[i + 1] as number)
  if (i < end) s += (b[i] as number) << 8
  return s
}

function fold(s: number): number {
  let x = s
  while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 0x10000)
  return x
}

function checkByte(what: string, v: number, max: number): number {
  if (!(v >= 0 && v <= max && Math.floor(v) === v)) {
    throw new WireError(WireErrorCode.FIELD, `${what} must be an integer 0..${max}, got ${String(v)}`)
  }
  return v
}

// Open writers, flushed if the process exits without close().
const open = new Set<PcapWriter>()
let exitHook = false

export class PcapWriter {
  private fd: number | undefined
  private chunk = Buffer.allocUnsafe(CHUNK)
  private used = 0
  private readonly ethernet: boolean
  /** Packets written so far. */
  packets = 0

  private constructor(fd: number, ethernet: boolean) {
    this.fd = fd
    this.ethernet = ethernet
    const h = Buffer.alloc(24)
    h.writeUInt32LE(PCAP_MAGIC_US, 0)
    h.writeUInt16LE(2, 4)
    h.writeUInt16LE(4, 6)
    h.writeInt32LE(0, 8) // thiszone
    h.writeUInt32LE(0, 12) // sigfigs
    h.writeUInt32LE(SNAPLEN, 16)
    h.writeUInt32LE(ethernet ? LINKTYPE_ETHERNET : LINKTYPE_RAW, 20)
    this.append(h)
  }

  /**
   * Creates (or truncates) `path` and writes the pcap file header. The file is private (mode
   * 0600, also when it existed): captures hold rkeys, addresses and plaintext payload. A symbolic
   * link at `path` is refused (ELOOP) rather than followed.
   */
  static open(path: string, options: PcapWriterOptions = {}): PcapWriter {
    const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, CAPTURE_MODE)
    try {
      fs.fchmodSync(fd, CAPTURE_MODE)
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
    const w = new PcapWriter(fd, options.linkType === 'ethernet')
    open.add(w)
    if (!exitHook) {
      exitHook = true
      process.once('exit', () => {
        for (const x of open) x.flush()
      })
    }
    return w
  }

  /**
   * Adds one datagram: `udpPayloadWithIcrc` as sent/received on UDP, with IP and UDP headers made
   * from `ip` (IPv4: ID ip.ipId, DF per ip.df, TTL ip.ttl ?? 64, valid header checksum, UDP
   * checksum 0; IPv6: flow label, hop limit, valid UDP checksum). Timestamp defaults to now.
   */
  write(udpPayloadWithIcrc: Uint8Array, ip: IpContext, timestampMs?: number): void {
    if (this.fd === undefined) throw new WireError(WireErrorCode.CLOSED, 'PcapWriter.write after close()')
    const payload = udpPayloadWithIcrc
    const v4 = ip.family === 4
    if (!v4 && ip.family !== 6) throw new WireError(WireErrorCode.ADDRESS, `IP family must be 4 or 6, got ${String(ip.family)}`)
    const src = addressBytes(ip.family, ip.src)
    const dst = addressBytes(ip.family, ip.dst)
    const udpLen = 8 + payload.length
    const ipLen = v4 ? 20 : 40
    if (udpLen + (v4 ? ipLen : 0) > 0xffff) throw new WireError(WireErrorCode.LENGTH, `${payload.length} bytes do not fit in one IP datagram`)
    const tos = checkByte('tos', ip.tos ?? 0, 0xff)
    const ttl = checkByte('ttl', ip.ttl ?? 64, 0xff)
    const eth = this.ethernet ? 14 : 0
    const frameLen = eth + ipLen + udpLen
    const t = timestampMs ?? performance.timeOrigin + performance.now()
    let sec = Math.floor(t / 1000)
    let usec = Math.round((t - sec * 1000) * 1000)
    if (usec >= 1_000_000) {
      sec += 1
      usec -= 1_000_000
    }

    const rec = Buffer.allocUnsafe(16 + frameLen - payload.length)
    rec.writeUInt32LE(sec >>> 0, 0)
    rec.writeUInt32LE(usec, 4)
    rec.writeUInt32LE(frameLen, 8)
    rec.writeUInt32LE(frameLen, 12)
    let o = 16
    if (eth) {
      rec.set(ETH_DST, o)
      rec.set(ETH_SRC, o + 6)
      rec.writeUInt16BE(v4 ? 0x0800 : 0x86dd, o + 12)
      o += eth
    }
    const ipAt = o
    if (v4) {
      rec[o] = 0x45
      rec[o + 1] = tos
      rec.writeUInt16BE(ipLen + udpLen, o + 2)
      rec.writeUInt16BE(checkByte('ipId', ip.ipId ?? 0, 0xffff), o + 4)
      rec.writeUInt16BE((ip.df ?? true) ? 0x4000 : 0, o + 6)
      rec[o + 8] = ttl
      rec[o + 9] = 17
      rec.writeUInt16BE(0, o + 10)
      rec.set(src, o + 12)
      rec.set(dst, o + 16)
      rec.writeUInt16BE(~fold(sum16(rec, o, o + 20, 0)) & 0xffff, o + 10)
    } else {
      const flow = checkByte('flowLabel', ip.flowLabel ?? 0, 0xfffff)
      rec.writeUInt32BE(((6 << 28) | (tos << 20) | flow) >>> 0, o)
      rec.writeUInt16BE(udpLen, o + 4)
      rec[o + 6] = 17
      rec[o + 7] = ttl
      rec.set(src, o + 8)
      rec.set(dst, o + 24)
    }
    o += ipLen
    const udpAt = o
    rec.writeUInt16BE(checkByte('srcPort', ip.srcPort, 0xffff), o)
    rec.writeUInt16BE(checkByte('dstPort', ip.dstPort, 0xffff), o + 2)
    rec.writeUInt16BE(udpLen, o + 4)
    rec.writeUInt16BE(0, o + 6)
    if (!v4) {
      // IPv6 requires a UDP checksum: pseudo-header (addresses, length, next header) + UDP.
      let s = sum16(rec, ipAt + 8, ipAt + 40, 0) + udpLen + 17
      s = sum16(rec, udpAt, udpAt + 8, s)
      s = sum16(payload, 0, payload.length, s)
      const c = ~fold(s) & 0xffff
      rec.writeUInt16BE(c === 0 ? 0xffff : c, udpAt + 6)
    }
    this.append(rec)
    this.append(payload)
    this.packets++
  }

  /** Writes buffered records to the file now. */
  flush(): void {
    if (this.fd === undefined || this.used === 0) return
    let off = 0
    while (off < this.used) off += fs.writeSync(this.fd, this.chunk, off, this.used - off)
    this.used = 0
  }

  /** Flushes and closes the file. Safe to call twice. */
  async close(): Promise<void> {
    if (this.fd === undefined) return
    try {
      this.flush()
    } finally {
      fs.closeSync(this.fd)
      this.fd = undefined
      open.delete(this)
    }
  }

  private append(b: Uint8Array): void {
    if (this.used + b.length > CHUNK) this.flush()
    if (b.length > CHUNK) {
      let off = 0
      while (off < b.length) off += fs.writeSync(this.fd as number, b, off, b.length - off)
      return
    }
    this.chunk.set(b, this.used)
    this.used += b.length
  }
}
