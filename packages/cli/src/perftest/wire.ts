/**
 * The messages of perftest's out-of-band TCP exchange (linux-rdma/perftest
 * src/perftest_communication.c, without -R), byte for byte as perftest 6.x writes them:
 *
 * - versions: `char version[16]`, the text of VERSION NUL-padded (exchange_versions);
 * - system data: the page-sized cycle buffer and the cache line size, each a big-endian int32
 *   (check_sys_data, peers >= 5.32);
 * - MTU: sprintf("%d") of the ibv_mtu enum (1 = 256 … 5 = 4096), 2 bytes (check_mtu, peers >= 5.31);
 * - QP keys: KEY_PRINT_FMT_GID, "%04x:%04x:%06x:%06x:%08x:%016llx:" (LID, outstanding reads, QPN,
 *   PSN, rkey, vaddr), the 16 GID bytes each "%02x:", "%08x:" (SRQN), NUL: 108 bytes;
 * - BW report: size (uint64), iterations (uint64 from 5.33 on, else int32), peak BW, average BW
 *   and message rate (doubles), each big-endian, each its own exchange (xchg_bw_reports);
 * - "done" plus NUL at the end (ctx_close_connection).
 */
/** The version this command announces: perftest's in Debian 12 (package 4.5+0.17, VERSION 6.06). */
export const PERFTEST_VERSION = '6.06'
/** check_version_compatibility: perftest refuses peers older than this. */
export const MIN_PEER_VERSION = 5.7
export const VERSION_BYTES = 16
export const KEY_MSG_SIZE_GID = 108
export const DONE = Buffer.from('done\0', 'latin1')

/** A bad message from the peer: printed as `ERR_PERFTEST_EXCHANGE: …`. */
export class PerftestExchangeError extends Error {
  override readonly name = 'PerftestExchangeError'
  readonly code: string
  constructor(message: string, code = 'ERR_PERFTEST_EXCHANGE') {
    super(message)
    this.code = code
  }
}

/** What perftest calls struct pingpong_dest (the fields the GID format carries). */
export interface PerftestDest {
  readonly lid: number
  readonly outReads: number
  readonly qpn: number
  readonly psn: number
  readonly rkey: number
  /** The remote address of the QP's target buffer (a 64-bit value; within 2^53 here). */
  readonly vaddr: number
  /** 16 bytes, network order. */
  readonly gid: Uint8Array
  readonly srqn: number
}

const hex = (n: number | bigint, width: number): string => n.toString(16).padStart(width, '0')

const visible = (msg: Uint8Array): string => JSON.stringify(Buffer.from(msg).toString('latin1').replace(/\0[\s\S]*$/, ''))

export function encodeVersion(version = PERFTEST_VERSION): Buffer {
  const b = Buffer.alloc(VERSION_BYTES)
  b.write(version.slice(0, VERSION_BYTES - 1), 'latin1')
  return b
}

/** The peer's version as atof reads it; refuses what is not a version number or is too old. */
export function decodeVersion(msg: Uint8Array): { text: string; value: number } {
  const text = Buffer.from(msg).toString('latin1').replace(/\0[\s\S]*$/, '')
  const m = /^(\d{1,3}\.\d{1,3})(?:[.\-+~][0-9A-Za-z.\-+~]*)?$/.exec(text)
  if (m === null) throw new PerftestExchangeError(`not a perftest version message: ${visible(msg)} (is the peer perftest 5.70 or newer, without -R?)`)
  const value = Number(m[1])
  if (value < MIN_PEER_VERSION) throw new PerftestExchangeError(`the peer runs perftest ${text}: not compatible with versions older than 5.70`, 'ERR_PERFTEST_VERSION')
  return { text, value }
}

export function encodeInt32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeInt32BE(n)
  return b
}

/** A positive power of two up to 1 GiB (cycle buffer, cache line size): anything else is garbled. */
export function decodeSysValue(msg: Uint8Array, what: string): number {
  const n = Buffer.from(msg).readInt32BE(0)
  if (n <= 0 || n > 1 << 30 || (n & (n - 1)) !== 0) throw new PerftestExchangeError(`the peer's ${what} is ${n}: not a power of two up to 1 GiB`)
  return n
}

/** ibv_mtu enum value of a path MTU in bytes. */
export const mtuEnum = (bytes: number): number => Math.log2(bytes) - 7
export const mtuBytes = (e: number): number => 1 << (e + 7)

/** sprintf(cur, "%d", mtu) sent as 2 bytes ("3\0"). */
export function encodeMtu(bytes: number): Buffer {
  const b = Buffer.alloc(2)
  b.write(String(mtuEnum(bytes)), 'latin1')
  return b
}

export function decodeMtu(msg: Uint8Array): number {
  const text = Buffer.from(msg).toString('latin1').replace(/\0[\s\S]*$/, '')
  if (!/^[1-5]$/.test(text)) throw new PerftestExchangeError(`not a perftest MTU message: ${visible(msg)} (an ibv_mtu value 1..5)`)
  return mtuBytes(Number(text))
}

/** sprintf(KEY_PRINT_FMT_GID, …) into the 108-byte message, NUL-padded. */
export function encodeKeys(d: PerftestDest): Buffer {
  if (d.gid.length !== 16) throw new RangeError(`a GID is 16 bytes, got ${d.gid.length}`)
  const gid = [...d.gid].map((b) => `${hex(b, 2)}:`).join('')
  const text = `${hex(d.lid, 4)}:${hex(d.outReads, 4)}:${hex(d.qpn, 6)}:${hex(d.psn, 6)}:${hex(d.rkey >>> 0, 8)}:${hex(BigInt(d.vaddr), 16)}:${gid}${hex(d.srqn >>> 0, 8)}:`
  const msg = Buffer.alloc(KEY_MSG_SIZE_GID)
  msg.write(text, 'latin1')
  return msg
}

const KEYS = new RegExp(`^([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,6}):([0-9a-fA-F]{1,6}):([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,16}):((?:[0-9a-fA-F]{2}:){16})([0-9a-fA-F]{1,8}):?$`)

/** The parse of ethernet_read_keys, but refusing what perftest would misread. */
export function decodeKeys(msg: Uint8Array): PerftestDest {
  const text = Buffer.from(msg).toString('latin1').replace(/\0[\s\S]*$/, '')
  const m = KEYS.exec(text)
  if (m === null) throw new PerftestExchangeError(`not a perftest QP message (LID:OUT:QPN:PSN:RKEY:VADDR:GID…:SRQN): ${visible(msg)}`)
  const vaddr = BigInt(`0x${m[6]!}`)
  if (vaddr > BigInt(Number.MAX_SAFE_INTEGER)) throw new PerftestExchangeError(`the peer's buffer address 0x${m[6]!} is beyond 2^53`)
  const gid = Buffer.from(m[7]!.replace(/:/g, ''), 'hex')
  return {
    lid: parseInt(m[1]!, 16), outReads: parseInt(m[2]!, 16), qpn: parseInt(m[3]!, 16), psn: parseInt(m[4]!, 16),
    rkey: parseInt(m[5]!, 16), vaddr: Number(vaddr), gid, srqn: parseInt(m[8]!, 16),
  }
}

/** One side's BW figures, as xchg_bw_reports sends them. */
export interface BwReport {
  readonly size: number
  readonly iters: number
  /** MB/s (2^20 bytes) or Gb/s, as the side's report format says. */
  readonly bwPeak: number
  readonly bwAvg: number
  /** Mpps. */
  readonly msgRate: number
}

/** The fields of a BW report, each its own exchange, in order; `wideIters` for peers >= 5.33. */
export function encodeBwReport(r: BwReport, wideIters: boolean): Buffer[] {
  const u64 = (n: number): Buffer => {
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(BigInt(Math.max(0, Math.round(n))))
    return b
  }
  const f64 = (n: number): Buffer => {
    const b = Buffer.alloc(8)
    b.writeDoubleBE(n)
    return b
  }
  return [u64(r.size), wideIters ? u64(r.iters) : encodeInt32(r.iters), f64(r.bwPeak), f64(r.bwAvg), f64(r.msgRate)]
}

export function bwReportFieldSizes(wideIters: boolean): number[] {
  return [8, wideIters ? 8 : 4, 8, 8, 8]
}

export function decodeBwReport(fields: readonly Buffer[]): BwReport {
  const [size, iters, peak, avg, rate] = fields
  const r = {
    size: Number(size!.readBigUInt64BE(0)),
    iters: iters!.length === 8 ? Number(iters!.readBigUInt64BE(0)) : iters!.readInt32BE(0),
    bwPeak: peak!.readDoubleBE(0), bwAvg: avg!.readDoubleBE(0), msgRate: rate!.readDoubleBE(0),
  }
  // The figures are any double (perftest reports inf when it cannot sample its CPU clock); the
  // size must be a size.
  if (!Number.isSafeInteger(r.size) || r.iters < 0) throw new PerftestExchangeError(`not a perftest BW report: size ${size!.toString('hex')}, iterations ${iters!.toString('hex')}`)
  return r
}

/**
 * With -R the QP keys travel as SENDs on the rdma_cm control QP: struct pingpong_dest itself,
 * its fields big-endian (rdma_write_keys/rdma_read_keys with HAVE_ENDIAN): int lid, out_reads,
 * qpn, psn, unsigned rkey (then 4 bytes of padding), unsigned long long vaddr, 16 GID bytes,
 * unsigned srqn, int gid_index: 56 bytes.
 */
export const PINGPONG_DEST_BYTES = 56

export function encodeKeysBinary(d: PerftestDest): Buffer {
  if (d.gid.length !== 16) throw new RangeError(`a GID is 16 bytes, got ${d.gid.length}`)
  const b = Buffer.alloc(PINGPONG_DEST_BYTES)
  b.writeUInt32BE(d.lid >>> 0, 0)
  b.writeUInt32BE(d.outReads >>> 0, 4)
  b.writeUInt32BE(d.qpn >>> 0, 8)
  b.writeUInt32BE(d.psn >>> 0, 12)
  b.writeUInt32BE(d.rkey >>> 0, 16)
  b.writeBigUInt64BE(BigInt(d.vaddr), 24)
  b.set(d.gid, 32)
  b.writeUInt32BE(d.srqn >>> 0, 48)
  return b
}

/** rdma_read_keys: the srqn and gid_index are not read (perftest leaves them as they were). */
export function decodeKeysBinary(msg: Uint8Array): PerftestDest {
  if (msg.length !== PINGPONG_DEST_BYTES) throw new PerftestExchangeError(`not a perftest QP message: ${msg.length} bytes, struct pingpong_dest is ${PINGPONG_DEST_BYTES}`)
  const b = Buffer.from(msg.buffer, msg.byteOffset, msg.length)
  const vaddr = b.readBigUInt64BE(24)
  if (vaddr > BigInt(Number.MAX_SAFE_INTEGER)) throw new PerftestExchangeError(`the peer's buffer address 0x${vaddr.toString(16)} is beyond 2^53`)
  return {
    lid: b.readUInt32BE(0), outReads: b.readUInt32BE(4), qpn: b.readUInt32BE(8) & 0xffffff, psn: b.readUInt32BE(12) & 0xffffff,
    rkey: b.readUInt32BE(16), vaddr: Number(vaddr), gid: Uint8Array.from(b.subarray(32, 48)), srqn: 0,
  }
}
