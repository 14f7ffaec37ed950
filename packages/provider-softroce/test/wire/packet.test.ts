import { describe, expect, it } from 'vitest'
import { ackSyndrome, nakSyndrome, NakCode } from '../../src/wire/aeth.js'
import { WireError, WireErrorCode } from '../../src/wire/errors.js'
import { RcOpcode, opcodeInfo } from '../../src/wire/opcodes.js'
import {
  decodePacket,
  encodePacket,
  encodePacketInto,
  encodedLength,
  peekDestQpn,
  tryDecodePacket,
  type RocePacket,
} from '../../src/wire/packet.js'
import { ALL_OPCODES, Rand, randomPacket } from './random-packets.js'

const ICRC_PLACEHOLDER = Buffer.from([0xde, 0xad, 0xbe, 0xef])
const withIcrc = (b: Uint8Array): Buffer => Buffer.concat([b, ICRC_PLACEHOLDER])

/** What decode should return for `pkt`: computed pad count, all header keys present. */
function expectedDecode(pkt: RocePacket): RocePacket {
  const info = opcodeInfo(pkt.bth.opcode)!
  const has = (h: string): boolean => info.headers.includes(h as never)
  return {
    bth: { ...pkt.bth, padCount: (4 - (pkt.payload.length % 4)) % 4 },
    reth: has('RETH') ? pkt.reth : undefined,
    aeth: has('AETH') ? pkt.aeth : undefined,
    immDt: has('ImmDt') ? pkt.immDt : undefined,
    atomicEth: has('AtomicETH') ? pkt.atomicEth : undefined,
    atomicAckEth: has('AtomicAckETH') ? pkt.atomicAckEth : undefined,
    ieth: has('IETH') ? pkt.ieth : undefined,
    payload: pkt.payload,
  }
}

function expectSame(got: RocePacket, want: RocePacket): void {
  expect({ ...got, payload: Buffer.from(got.payload).toString('hex') }).toEqual({
    ...want,
    payload: Buffer.from(want.payload).toString('hex'),
  })
}

function wireCode(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(WireError)
    return (err as WireError).code
  }
  return 'no error'
}

const bth = (opcode: number, extra: Partial<RocePacket['bth']> = {}): RocePacket['bth'] => ({
  opcode,
  solicited: false,
  migReq: false,
  padCount: 0,
  tver: 0,
  pkey: 0xffff,
  fecn: false,
  becn: false,
  destQpn: 0xabc,
  ackReq: false,
  psn: 0,
  ...extra,
})

describe('packet layout (known answers)', () => {
  it('matches an ACK sent by kernel rxe (captured, rxe-lab)', () => {
    // 10.77.0.2 -> 10.77.0.1, IPv4 ID 6756: BTH + AETH + ICRC.
    const wire = Buffer.from('1100ffff00000abc000020001f00000158024d1e', 'hex')
    const p = decodePacket(wire)
    expect(p.bth).toEqual(bth(RcOpcode.ACKNOWLEDGE, { psn: 0x2000 }))
    expect(p.aeth).toEqual({ syndrome: ackSyndrome(), msn: 1 })
    expect(p.payload.length).toBe(0)
    expect(encodePacket(p).toString('hex')).toBe(wire.subarray(0, -4).toString('hex'))
  })

  it('matches a 61-byte SEND_ONLY sent by kernel rxe (pad 3, AckReq)', () => {
    const hex = `0430ffff00000abc80b32bf2${'5a'.repeat(61)}000000f9b257be`
    const wire = Buffer.from(hex, 'hex')
    const p = decodePacket(wire)
    expect(p.bth).toEqual(bth(RcOpcode.SEND_ONLY, { psn: 0xb32bf2, ackReq: true, padCount: 3 }))
    expect(Buffer.from(p.payload).equals(Buffer.alloc(61, 0x5a))).toBe(true)
    expect(encodePacket(p).equals(wire.subarray(0, -4))).toBe(true)
  })

  it('puts every BTH bit where the IBTA says', () => {
    const b = encodePacket({
      bth: { opcode: 0x0b, solicited: true, migReq: true, padCount: 0, tver: 0, pkey: 0x1234, fecn: true, becn: true, destQpn: 0x56789a, ackReq: true, psn: 0xbcdef0 },
      reth: { va: 0x0102030405060708n, rkey: 0x11223344, dmaLength: 0x55667788 },
      immDt: 0xcafebabe,
      payload: Buffer.from([1, 2, 3, 4, 5]),
    })
    expect(b.toString('hex')).toBe(
      '0b f0 1234 c0 56789a 80 bcdef0'.replace(/ /g, '') + // SE 0x80 | M 0x40 | pad 3 << 4 | tver 0
        '0102030405060708' + '11223344' + '55667788' + 'cafebabe' + '0102030405' + '000000',
    )
  })

  it('lays out AtomicETH, AtomicAckETH, AETH and IETH in order', () => {
    const cs = encodePacket({
      bth: bth(RcOpcode.COMPARE_SWAP),
      atomicEth: { va: 0xa1a2a3a4a5a6a7a8n, rkey: 0xb1b2b3b4, swapAdd: 0xc1c2c3c4c5c6c7c8n, compare: 0xd1d2d3d4d5d6d7d8n },
      payload: new Uint8Array(0),
    })
    expect(cs.subarray(12).toString('hex')).toBe('a1a2a3a4a5a6a7a8' + 'b1b2b3b4' + 'c1c2c3c4c5c6c7c8' + 'd1d2d3d4d5d6d7d8')
    const aa = encodePacket({
      bth: bth(RcOpcode.ATOMIC_ACKNOWLEDGE),
      aeth: { syndrome: nakSyndrome(NakCode.REMOTE_ACCESS_ERROR), msn: 0x010203 },
      atomicAckEth: { origData: 0xe1e2e3e4e5e6e7e8n },
      payload: new Uint8Array(0),
    })
    expect(aa.subarray(12).toString('hex')).toBe('62010203' + 'e1e2e3e4e5e6e7e8')
    const inv = encodePacket({ bth: bth(RcOpcode.SEND_ONLY_WITH_INVALIDATE), ieth: 0x0badf00d, payload: Buffer.from('abcd') })
    expect(inv.subarray(12).toString('hex')).toBe('0badf00d' + Buffer.from('abcd').toString('hex'))
  })

  it('payload is a view into the received buffer', () => {
    const wire = withIcrc(encodePacket({ bth: bth(RcOpcode.SEND_ONLY), payload: Buffer.from('hello world') }))
    const p = decodePacket(wire)
    expect(p.payload.buffer).toBe(wire.buffer)
    expect(p.payload.byteOffset).toBe(wire.byteOffset + 12)
    expect(Buffer.from(p.payload).toString()).toBe('hello world')
    expect(peekDestQpn(wire)).toBe(0xabc)
    expect(peekDestQpn(new Uint8Array(5))).toBe(-1)
  })
})

describe('encode/decode round trips', () => {
  it('every opcode with pad counts 0..3 and empty payloads', () => {
    const r = new Rand(1)
    for (const info of ALL_OPCODES) {
      const sizes = info.hasPayload ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 1021, 1024] : [0]
      for (const n of sizes) {
        const pkt = randomPacket(r, info)
        pkt.payload = r.bytes(n)
        const enc = encodePacket(pkt)
        expect(enc.length % 4).toBe(0)
        expect(enc.length).toBe(encodedLength(pkt))
        expect(enc.length).toBe(info.headerLength + n + ((4 - (n % 4)) % 4))
        const dec = decodePacket(withIcrc(enc))
        expect(dec.bth.padCount).toBe((4 - (n % 4)) % 4)
        expectSame(dec, expectedDecode(pkt))
      }
    }
  })

  it('5000 random packets (seeded) of all opcodes and header values', () => {
    const r = new Rand(0x5eed)
    for (let i = 0; i < 5000; i++) {
      const info = r.pick(ALL_OPCODES)
      const pkt = randomPacket(r, info, r.int(4) === 0 ? 4096 : 40)
      const out = Buffer.alloc(encodedLength(pkt) + 8, 0xee)
      const n = encodePacketInto(pkt, out, 4)
      expect(n).toBe(encodedLength(pkt))
      expect(out[3]).toBe(0xee) // nothing written outside [offset, offset + n)
      expect(out[4 + n]).toBe(0xee)
      expect(out.subarray(4, 4 + n).equals(encodePacket(pkt))).toBe(true)
      expectSame(decodePacket(withIcrc(out.subarray(4, 4 + n))), expectedDecode(pkt))
    }
  })

  it('ignores the caller-supplied pad count and headers the opcode does not have', () => {
    const pkt: RocePacket = {
      bth: bth(RcOpcode.SEND_MIDDLE, { padCount: 3 }),
      reth: { va: 1n, rkey: 2, dmaLength: 3 },
      aeth: { syndrome: 0, msn: 0 },
      payload: Buffer.alloc(8),
    }
    const enc = encodePacket(pkt)
    expect(enc.length).toBe(20)
    expect(decodePacket(withIcrc(enc)).bth.padCount).toBe(0)
    expect(decodePacket(withIcrc(enc)).reth).toBeUndefined()
  })
})

describe('encode validation', () => {
  const ok = (): RocePacket => ({ bth: bth(RcOpcode.RDMA_WRITE_ONLY), reth: { va: 0n, rkey: 0, dmaLength: 0 }, payload: new Uint8Array(0) })

  it('rejects unknown opcodes, missing headers and payload on payload-less opcodes', () => {
    expect(wireCode(() => encodePacket({ ...ok(), bth: bth(0x15) }))).toBe(WireErrorCode.OPCODE)
    expect(wireCode(() => encodePacket({ ...ok(), bth: bth(0x81) }))).toBe(WireErrorCode.OPCODE)
    expect(wireCode(() => encodePacket({ bth: bth(RcOpcode.RDMA_WRITE_FIRST), payload: new Uint8Array(0) }))).toBe(WireErrorCode.HEADER)
    expect(wireCode(() => encodePacket({ bth: bth(RcOpcode.ACKNOWLEDGE), payload: new Uint8Array(0) }))).toBe(WireErrorCode.HEADER)
    expect(wireCode(() => encodePacket({ bth: bth(RcOpcode.SEND_ONLY_WITH_IMMEDIATE), payload: new Uint8Array(0) }))).toBe(WireErrorCode.HEADER)
    expect(wireCode(() => encodePacket({ bth: bth(RcOpcode.FETCH_ADD), payload: new Uint8Array(0) }))).toBe(WireErrorCode.HEADER)
    expect(wireCode(() => encodePacket({ bth: bth(RcOpcode.SEND_LAST_WITH_INVALIDATE), payload: new Uint8Array(0) }))).toBe(WireErrorCode.HEADER)
    expect(wireCode(() => encodePacket({ bth: bth(RcOpcode.ATOMIC_ACKNOWLEDGE), aeth: { syndrome: 0, msn: 0 }, payload: new Uint8Array(0) }))).toBe(WireErrorCode.HEADER)
    expect(wireCode(() => encodePacket({ bth: bth(RcOpcode.ACKNOWLEDGE), aeth: { syndrome: 0, msn: 0 }, payload: new Uint8Array(1) }))).toBe(WireErrorCode.LENGTH)
  })

  it('rejects out-of-range fields', () => {
    const cases: [string, (p: RocePacket) => void][] = [
      ['psn', (p) => (p.bth.psn = 0x1000000)],
      ['psn<0', (p) => (p.bth.psn = -1)],
      ['psn frac', (p) => (p.bth.psn = 1.5)],
      ['psn NaN', (p) => (p.bth.psn = Number.NaN)],
      ['qpn', (p) => (p.bth.destQpn = 0x1000000)],
      ['pkey', (p) => (p.bth.pkey = 0x10000)],
      ['tver', (p) => (p.bth.tver = 16)],
      ['va', (p) => (p.reth!.va = 1n << 64n)],
      ['va<0', (p) => (p.reth!.va = -1n)],
      ['va number', (p) => (p.reth!.va = 5 as unknown as bigint)],
      ['rkey', (p) => (p.reth!.rkey = 2 ** 32)],
      ['dmaLength', (p) => (p.reth!.dmaLength = -1)],
    ]
    for (const [name, mutate] of cases) {
      const p = ok()
      mutate(p)
      expect(wireCode(() => encodePacket(p)), name).toBe(WireErrorCode.FIELD)
    }
    expect(wireCode(() => encodePacket({ bth: bth(RcOpcode.ACKNOWLEDGE), aeth: { syndrome: 256, msn: 0 }, payload: new Uint8Array(0) }))).toBe(WireErrorCode.FIELD)
    expect(wireCode(() => encodePacket({ bth: bth(RcOpcode.ACKNOWLEDGE), aeth: { syndrome: 0, msn: 1 << 24 }, payload: new Uint8Array(0) }))).toBe(WireErrorCode.FIELD)
    expect(wireCode(() => encodePacket({ bth: bth(RcOpcode.SEND_ONLY_WITH_IMMEDIATE), immDt: -1, payload: new Uint8Array(0) }))).toBe(WireErrorCode.FIELD)
  })

  it('refuses to write past the end of the output buffer', () => {
    const p = { bth: bth(RcOpcode.SEND_ONLY), payload: Buffer.alloc(10) }
    const out = Buffer.alloc(24)
    expect(wireCode(() => encodePacketInto(p, out, 1))).toBe(WireErrorCode.TRUNCATED)
    expect(wireCode(() => encodePacketInto(p, out, -1))).toBe(WireErrorCode.TRUNCATED)
    expect(encodePacketInto(p, out, 0)).toBe(24)
  })
})

describe('decode of malformed input', () => {
  const good = (op: number, payload = 0): Buffer => {
    const r = new Rand(op)
    const pkt = randomPacket(r, opcodeInfo(op)!)
    pkt.payload = Buffer.alloc(payload, 1)
    return withIcrc(encodePacket(pkt))
  }

  it('names each failure', () => {
    expect(wireCode(() => decodePacket(new Uint8Array(0)))).toBe(WireErrorCode.TRUNCATED)
    expect(wireCode(() => decodePacket(good(RcOpcode.SEND_ONLY).subarray(0, 15)))).toBe(WireErrorCode.TRUNCATED)
    for (const op of [0x15, 0x18, 0x1f, 0x20, 0x24, 0x64, 0x81, 0xff]) {
      const b = good(RcOpcode.SEND_ONLY, 4)
      b[0] = op
      expect(wireCode(() => decodePacket(b)), `0x${op.toString(16)}`).toBe(WireErrorCode.OPCODE)
    }
    const v = good(RcOpcode.SEND_ONLY, 4)
    v[1] = (v[1]! & 0xf0) | 1
    expect(wireCode(() => decodePacket(v))).toBe(WireErrorCode.VERSION)
    // READ_REQUEST needs BTH + RETH + ICRC = 32 bytes
    expect(wireCode(() => decodePacket(good(RcOpcode.RDMA_READ_REQUEST).subarray(0, 28)))).toBe(WireErrorCode.TRUNCATED)
    expect(wireCode(() => decodePacket(good(RcOpcode.COMPARE_SWAP).subarray(0, 40)))).toBe(WireErrorCode.TRUNCATED)
    // not a multiple of 4
    expect(wireCode(() => decodePacket(Buffer.concat([good(RcOpcode.SEND_ONLY, 4), Buffer.alloc(1)])))).toBe(WireErrorCode.LENGTH)
    // bytes after an ACK
    expect(wireCode(() => decodePacket(Buffer.concat([good(RcOpcode.ACKNOWLEDGE), Buffer.alloc(4)])))).toBe(WireErrorCode.LENGTH)
    // pad on an ACK
    const ackPad = good(RcOpcode.ACKNOWLEDGE)
    ackPad[1] = 0x10
    expect(wireCode(() => decodePacket(ackPad))).toBe(WireErrorCode.PAD)
    // pad with no payload bytes
    const sendPad = good(RcOpcode.SEND_ONLY, 0)
    sendPad[1] = 0x20
    expect(wireCode(() => decodePacket(sendPad))).toBe(WireErrorCode.PAD)
  })

  it('tryDecodePacket returns the error instead of throwing', () => {
    const e = tryDecodePacket(new Uint8Array(3))
    expect(e).toBeInstanceOf(WireError)
    expect((e as WireError).code).toBe(WireErrorCode.TRUNCATED)
    expect(tryDecodePacket(good(RcOpcode.SEND_ONLY, 3))).not.toBeInstanceOf(WireError)
  })

  it('fuzz: 100k random and mutated buffers only ever throw WireError, and what decodes re-encodes', () => {
    const r = new Rand(0xf022)
    const seeds = ALL_OPCODES.map((info) => {
      const p = randomPacket(r, info, 24)
      return withIcrc(encodePacket(p))
    })
    const counts = { ok: 0, wire: new Map<string, number>() }
    for (let i = 0; i < 100_000; i++) {
      let buf: Uint8Array
      const mode = r.int(4)
      if (mode === 0) {
        // pure noise; often with a valid opcode and version so decoding goes deeper
        buf = r.bytes(r.int(72))
        if (buf.length > 1 && r.bool()) {
          buf[0] = r.pick(ALL_OPCODES).opcode
          buf[1]! &= 0xf0
        }
      } else {
        const base = Buffer.from(r.pick(seeds))
        if (mode === 1) {
          for (let k = 1 + r.int(4); k > 0; k--) {
            const at = r.int(base.length)
            base[at] = base[at]! ^ (1 << r.int(8))
          }
          buf = base
        } else if (mode === 2) {
          buf = base.subarray(0, r.int(base.length + 1))
        } else {
          buf = Buffer.concat([base, r.bytes(r.int(9))])
          buf[1]! = (buf[1]! & 0xcf) | (r.int(4) << 4)
        }
      }
      // decode from a view in the middle of a larger buffer: reading out of bounds would show
      const host = new Uint8Array(buf.length + 32).fill(0xa5)
      host.set(buf, 16)
      const view = host.subarray(16, 16 + buf.length)
      let pkt: RocePacket
      try {
        pkt = decodePacket(view)
      } catch (err) {
        if (!(err instanceof WireError)) throw err
        counts.wire.set(err.code, (counts.wire.get(err.code) ?? 0) + 1)
        continue
      }
      counts.ok++
      const p = pkt.payload
      if (p.length > 0) {
        expect(p.buffer).toBe(host.buffer)
        expect(p.byteOffset >= view.byteOffset && p.byteOffset + p.length <= view.byteOffset + view.length - 4).toBe(true)
      }
      // decode -> encode reproduces the input, except reserved bits and pad bytes
      const re = encodePacket(pkt)
      const want = Buffer.from(view.subarray(0, view.length - 4))
      want[4]! &= 0xc0 // resv6
      want[8]! &= 0x80 // resv7
      want.fill(0, want.length - pkt.bth.padCount)
      if (!re.equals(want)) throw new Error(`re-encode mismatch for ${Buffer.from(view).toString('hex')}`)
    }
    // the fuzzer reached every failure and plenty of successes
    expect(counts.ok).toBeGreaterThan(10_000)
    for (const code of ['ERR_WIRE_TRUNCATED', 'ERR_WIRE_OPCODE', 'ERR_WIRE_VERSION', 'ERR_WIRE_PAD', 'ERR_WIRE_LENGTH']) {
      expect(counts.wire.get(code) ?? 0, code).toBeGreaterThan(100)
    }
  })
})
