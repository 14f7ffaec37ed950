/**
 * Fuzz helper: builds valid RoCEv2 RC packets, mutates their bytes (opcode, PSN, QPN, flags, pad,
 * P_Key, RETH va/rkey/length, AETH, AtomicETH, truncation, extension, byte flips) and signs the
 * result with a valid ICRC, so the mutated packet passes the ICRC check and reaches the parser
 * and the RC engine.
 */
import { writeIcrc, type IpContext } from '../../src/wire/icrc.js'
import { HeaderSize, OPCODE_TABLE, RcOpcode, type ExtHeader } from '../../src/wire/opcodes.js'
import { encodePacket, type RocePacket } from '../../src/wire/packet.js'
import type { Rand } from '../wire/random-packets.js'

/** A packet record with the default P_Key and no flags. */
export function packet(opcode: number, destQpn: number, psn: number, fields: Partial<Omit<RocePacket, 'bth'>> = {}, ackReq = false): RocePacket {
  return {
    bth: { opcode, solicited: false, migReq: false, padCount: 0, tver: 0, pkey: 0xffff, fecn: false, becn: false, destQpn, ackReq, psn: psn & 0xffffff },
    payload: new Uint8Array(0),
    ...fields,
  }
}

/** `body` (a UDP payload without ICRC) followed by a valid ICRC for `ip`. */
export function sign(body: Uint8Array, ip: IpContext): Buffer {
  const out = Buffer.alloc(body.length + HeaderSize.ICRC)
  out.set(body, 0)
  writeIcrc(out, body.length, ip)
  return out
}

/** Offset of extension header `h` in a packet with opcode byte `op`, or -1. */
export function headerOffset(op: number, h: ExtHeader): number {
  const info = OPCODE_TABLE[op]
  if (info === undefined) return -1
  let o = HeaderSize.BTH
  for (const x of info.headers) {
    if (x === h) return o
    o += HeaderSize[x]
  }
  return -1
}

/** What the mutator may aim at: registered regions (va, rkey, length) and known QPNs. */
export interface Targets {
  readonly regions: readonly { addr: number; rkey: number; length: number }[]
  readonly qpns: readonly number[]
}

const put32 = (b: Buffer, o: number, v: number): void => {
  if (o + 4 <= b.length) b.writeUInt32BE(v >>> 0, o)
}
const put64 = (b: Buffer, o: number, v: bigint): void => {
  if (o + 8 <= b.length) b.writeBigUInt64BE(BigInt.asUintN(64, v), o)
}
const put24 = (b: Buffer, o: number, v: number): void => {
  b[o] = (v >>> 16) & 0xff
  b[o + 1] = (v >>> 8) & 0xff
  b[o + 2] = v & 0xff
}

/** A length near the edges that matter: 0, 1, a page, the PMTU, 2^31, 2^32-1, random. */
function edgyLength(r: Rand): number {
  return r.pick([0, 1, 3, 8, 255, 256, 257, 4096, 65536, 0x7fffffff, 0x80000000, 0xffffffff, r.u32(), r.int(4096)])
}

/** A virtual address inside, at the edge of, or outside a known region. */
function edgyVa(r: Rand, t: Targets): bigint {
  const reg = t.regions.length > 0 ? r.pick(t.regions) : { addr: 0, length: 0 }
  const base = BigInt(reg.addr)
  const end = base + BigInt(reg.length)
  return r.pick([base, base - 1n, base + BigInt(r.int(reg.length + 1)), end, end - 1n, end - 8n, end + 1n, base + BigInt(r.int(8)), 0n, 0xffff_ffff_ffff_ffffn, 2n ** 53n, r.u64()])
}

type Mutation = (b: Buffer, r: Rand, t: Targets) => Buffer

/** Every mutation, by name. */
export const MUTATIONS: Record<string, Mutation> = {
  opcode: (b, r) => {
    b[0] = r.pick([r.int(256), (b[0]! + 1) & 0xff, (b[0]! - 1) & 0xff, r.pick(Object.values(RcOpcode))])
    return b
  },
  psn: (b, r) => {
    const psn = b.readUIntBE(9, 3)
    put24(b, 9, r.pick([psn + 1, psn - 1, psn + 2 + r.int(30), psn - 2 - r.int(30), psn + 0x800000, r.bits(24)]) & 0xffffff)
    return b
  },
  qpn: (b, r, t) => {
    put24(b, 5, r.pick([r.bits(24), 0, 1, ...(t.qpns.length > 0 ? [r.pick(t.qpns)] : [])]))
    return b
  },
  padAndVersion: (b, r) => {
    b[1] = (b[1]! & 0xc0) | (r.int(4) << 4) | (r.int(8) === 0 ? r.int(16) : 0)
    return b
  },
  flags: (b, r) => {
    b[1] = b[1]! ^ (r.bool() ? 0x80 : 0x40)
    b[4] = r.int(256)
    b[8] = (b[8]! ^ (r.bool() ? 0x80 : 0)) | (r.bool() ? 0 : r.int(128))
    return b
  },
  pkey: (b, r) => {
    b.writeUInt16BE(r.pick([0, 0x7fff, 0x8001, 0xfffe, r.bits(16)]), 2)
    return b
  },
  rethVa: (b, r, t) => {
    const o = headerOffset(b[0]!, 'RETH')
    if (o >= 0) put64(b, o, edgyVa(r, t))
    return b
  },
  rethRkey: (b, r, t) => {
    const o = headerOffset(b[0]!, 'RETH')
    if (o >= 0) put32(b, o + 8, r.bool() && t.regions.length > 0 ? r.pick(t.regions).rkey : r.u32())
    return b
  },
  rethLength: (b, r) => {
    const o = headerOffset(b[0]!, 'RETH')
    if (o >= 0) put32(b, o + 12, edgyLength(r))
    return b
  },
  aeth: (b, r) => {
    const o = headerOffset(b[0]!, 'AETH')
    if (o >= 0) {
      // ACK with credits, RNR NAK with any timer, NAKs 0-4, reserved NAK codes, reserved kind 0x40
      b[o] = r.pick([r.int(32), 0x20 | r.int(32), 0x60 | r.int(5), 0x60 | (5 + r.int(27)), 0x40 | r.int(32), r.int(256)])
      if (r.bool()) put24(b, o + 1, r.bits(24))
    }
    return b
  },
  atomic: (b, r, t) => {
    const o = headerOffset(b[0]!, 'AtomicETH')
    if (o >= 0) {
      put64(b, o, r.bool() ? edgyVa(r, t) + BigInt(r.int(8)) : edgyVa(r, t))
      if (r.bool()) put32(b, o + 8, r.bool() && t.regions.length > 0 ? r.pick(t.regions).rkey : r.u32())
    }
    return b
  },
  truncate: (b, r) => {
    const keep = Math.max(0, b.length - 1 - r.int(Math.min(b.length, 48)))
    return Buffer.from(b.subarray(0, r.bool() ? keep & ~3 : keep))
  },
  extend: (b, r) => Buffer.concat([b, r.bytes(r.pick([1, 2, 3, 4, 8, 256, 4096]))]),
  byteFlip: (b, r) => {
    const at = r.int(Math.min(b.length, 48))
    if (at < b.length) b[at] = b[at]! ^ (1 + r.int(255))
    return b
  },
}
const NAMES = Object.keys(MUTATIONS)

/**
 * `body` with 1–3 random mutations (a copy), and their names. Header mutations aim at the
 * fields the opcode (possibly already mutated) has.
 */
export function mutate(body: Uint8Array, r: Rand, t: Targets): { body: Buffer; applied: string[] } {
  let b: Buffer = Buffer.from(body)
  const applied: string[] = []
  for (let n = 1 + r.int(3); n > 0; n--) {
    const name = r.pick(NAMES)
    // a packet already cut shorter than a BTH can only grow
    if (b.length < HeaderSize.BTH && name !== 'extend') continue
    b = MUTATIONS[name]!(b, r, t)
    applied.push(name)
  }
  return { body: b, applied }
}

export { encodePacket }
