/** Test helper: a seeded PRNG and random (valid) RocePackets for every RC opcode. */
import { OPCODE_TABLE, type OpcodeInfo } from '../../src/wire/opcodes.js'
import type { RocePacket } from '../../src/wire/packet.js'
import { seededRandom } from '@rdma-session/core'

export class Rand {
  private readonly next: () => number
  constructor(seed: number) {
    this.next = seededRandom(seed)
  }
  float(): number {
    return this.next()
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  u32(): number {
    return (this.int(0x10000) * 0x10000 + this.int(0x10000)) >>> 0
  }
  bool(): boolean {
    return this.next() < 0.5
  }
  /** Biased towards edge values (0, max) a fifth of the time. */
  bits(n: number): number {
    const max = 2 ** n - 1
    const r = this.int(10)
    if (r === 0) return 0
    if (r === 1) return max
    return n <= 16 ? this.int(max + 1) : (this.u32() % (max + 1)) >>> 0
  }
  u64(): bigint {
    const r = this.int(10)
    if (r === 0) return 0n
    if (r === 1) return 0xffff_ffff_ffff_ffffn
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32())
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T
  }
}

export const ALL_OPCODES: readonly OpcodeInfo[] = OPCODE_TABLE.filter((x): x is OpcodeInfo => x !== undefined)

/** A random valid packet for `info` (payload up to maxPayload bytes if the opcode has one). */
export function randomPacket(r: Rand, info: OpcodeInfo, maxPayload = 64): RocePacket {
  const has = (h: string): boolean => info.headers.includes(h as never)
  const pkt: RocePacket = {
    bth: {
      opcode: info.opcode,
      solicited: r.bool(),
      migReq: r.bool(),
      padCount: 0,
      tver: 0,
      pkey: r.bits(16),
      fecn: r.bool(),
      becn: r.bool(),
      destQpn: r.bits(24),
      ackReq: r.bool(),
      psn: r.bits(24),
    },
    payload: info.hasPayload ? r.bytes(r.int(maxPayload + 1)) : new Uint8Array(0),
  }
  if (has('RETH')) pkt.reth = { va: r.u64(), rkey: r.bits(32), dmaLength: r.bits(32) }
  if (has('AETH')) pkt.aeth = { syndrome: r.bits(8), msn: r.bits(24) }
  if (has('ImmDt')) pkt.immDt = r.bits(32)
  if (has('AtomicETH')) pkt.atomicEth = { va: r.u64(), rkey: r.bits(32), swapAdd: r.u64(), compare: r.u64() }
  if (has('AtomicAckETH')) pkt.atomicAckEth = { origData: r.u64() }
  if (has('IETH')) pkt.ieth = r.bits(32)
  return pkt
}
