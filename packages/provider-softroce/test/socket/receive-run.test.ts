/**
 * The helper's receive runs (native/roce_receive_run.c through socket/receive-run.ts), called
 * directly on slabs of datagrams laid out as the receiver lays them out: where a run stops (bad
 * ICRC, foreign QP, gap, duplicate, other source, wrong length, bounds) and what it placed; and a
 * fuzz of random and mutated batches (at least 100,000 packets) against a reference model written
 * from the per-packet path's rules (wire/packet.ts decodePacket, wire/icrc.ts), with guard bytes
 * around every target: nothing is ever written outside it.
 */
import { describe, expect, it } from 'vitest'
import { seededRandom } from '@rdma-session/provider-interface'
import { newPacket } from '../../src/rc/packet-template.js'
import { bthOnlyDatagram, lastPayloadOf, ReceiveRuns, type ReceiveRunPlan } from '../../src/socket/receive-run.js'
import { loadSockoptAddon, receiveRunOf } from '../../src/socket/sockopt-addon.js'
import { encodeWithIcrc, solveIpv4Id, verifyIcrc, type IpContext } from '../../src/wire/icrc.js'
import { RcOpcode } from '../../src/wire/opcodes.js'
import { tryDecodePacket } from '../../src/wire/packet.js'
import { isWireError } from '../../src/wire/errors.js'

const loaded = loadSockoptAddon()
if (!loaded.loaded) throw new Error(`the receive-run tests need the native helper: ${loaded.why}`)
const rr = receiveRunOf(loaded.addon as object)
if (!rr.ok) throw new Error(rr.why)
const addon = rr.addon

const V4: IpContext = { family: 4, src: '10.1.2.3', dst: '10.1.2.4', srcPort: 50123, dstPort: 4791, ipId: 0, df: true }
const V6: IpContext = { family: 6, src: 'fd00::3', dst: 'fd00::4', srcPort: 50123, dstPort: 4791 }
const QPN = 0x12ab34
const META = 8
/** STOP_* of roce_receive_run.c. */
const STOP = { END: 0, LENGTH: 1, SOURCE: 2, HEADER: 3, PSN: 4, ICRC: 5, BOUNDS: 6, LAST: 7 }

interface Spec {
  opcode: number
  psn: number
  payload: Uint8Array
  qpn?: number
  ackReq?: boolean
  /** IPv4 ID the packet travelled with (its ICRC is for it). */
  ipId?: number
}

function datagram(s: Spec, ip: IpContext): Buffer {
  const pkt = newPacket()
  pkt.bth.opcode = s.opcode
  pkt.bth.psn = s.psn & 0xffffff
  pkt.bth.destQpn = s.qpn ?? QPN
  pkt.bth.ackReq = s.ackReq ?? false
  pkt.payload = s.payload
  return encodeWithIcrc(pkt, ip.family === 4 ? { ...ip, ipId: s.ipId ?? 0 } : ip)
}

/** A receive slab: the datagrams at 64 KiB-slot-like offsets, and their meta entries (one source unless told). */
class Batch {
  readonly slab = Buffer.alloc(1 << 20)
  readonly meta = new Int32Array(1024 * META)
  count = 0
  #at = 0

  add(d: Uint8Array, source = 0x0a010203, port = 50123): this {
    const i = this.count++
    this.slab.set(d, this.#at)
    const m = this.meta
    m[i * META] = d.length
    m[i * META + 1] = port
    m[i * META + 2] = 4
    m[i * META + 3] = source
    m[i * META + 7] = this.#at
    this.#at += (d.length + 63) & ~63
    return this
  }

  datagram(i: number): Buffer {
    const m = this.meta
    return this.slab.subarray(m[i * META + 7]!, m[i * META + 7]! + m[i * META]!)
  }
}

/** n pseudo-random bytes (xorshift32 words: the fuzz fills megabytes per second). */
const fill = (n: number, seed: number): Uint8Array => {
  const words = new Uint32Array((n + 3) >> 2)
  let x = (seed * 2654435761 + 1) >>> 0 || 1
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    words[i] = x >>> 0
  }
  return new Uint8Array(words.buffer, 0, n)
}

/** A WRITE plan over `target` from offset 0 at PSN `psn`. */
function writePlan(target: Uint8Array, pmtu: number, psn: number, offset = 0): ReceiveRunPlan {
  return { psn, pmtu, opMiddle: RcOpcode.RDMA_WRITE_MIDDLE, opLast: RcOpcode.RDMA_WRITE_LAST, targets: [target], offset, exact: true, lastPayload: lastPayloadOf(target.length, pmtu) }
}

/** The middle and last packets of a WRITE of `message` (its first packet, with the RETH, not included) from PSN `psn`. */
function writePackets(message: Uint8Array, pmtu: number, psn: number, ipIds = true): Spec[] {
  const out: Spec[] = []
  for (let at = pmtu, k = 0; at < message.length; at += pmtu, k++) {
    const end = Math.min(message.length, at + pmtu)
    out.push({ opcode: end === message.length ? RcOpcode.RDMA_WRITE_LAST : RcOpcode.RDMA_WRITE_MIDDLE, psn: psn + k, payload: message.subarray(at, end), ackReq: k % 5 === 4, ipId: ipIds ? k % 15 : 0 })
  }
  return out
}

describe('receiveRun: where a run stops and what it placed', () => {
  const runs = new ReceiveRuns(addon)

  for (const ip of [V4, V6]) {
    it(`IPv${ip.family}: a whole WRITE tail with a short last segment is placed in one run (IDs 0..14 solved)`, () => {
      for (const size of [4096 * 5 + 1, 4096 * 3 + 2, 4096 * 2 + 3, 4096 * 4 + 4096, 3 * 1024 + 100]) {
        const pmtu = size === 3 * 1024 + 100 ? 1024 : 4096
        const message = fill(size, size)
        const specs = writePackets(message, pmtu, 0xfffffe)
        const b = new Batch()
        for (const s of specs) b.add(datagram(s, ip))
        const target = new Uint8Array(size)
        target.set(message.subarray(0, pmtu)) // the first packet's payload, placed by the per-packet path
        const r = runs.run(b.slab, b.meta, 0, b.count, QPN, ip, writePlan(target, pmtu, 0xfffffe, pmtu))
        expect(r, `size ${size}`).toMatchObject({ packets: specs.length, bytes: size - pmtu, ended: true, ackRequests: specs.filter((s) => s.ackReq).length })
        expect(r.solved).toBe(ip.family === 4 ? specs.filter((s) => s.ipId !== 0).length : 0)
        expect(Buffer.from(target).equals(Buffer.from(message)), 'byte-exact').toBe(true)
        expect(runs.lastStop).toEqual({ reason: STOP.LAST, index: specs.length })
      }
    })
  }

  it('stops at a bad ICRC, a foreign QP, a gap, a duplicate, another source, a first packet: the packets before it are placed', () => {
    const pmtu = 1024
    const message = fill(pmtu * 12, 7)
    const specs = writePackets(message, pmtu, 100)
    const cases: [string, (b: Batch) => void, number][] = [
      ['bad ICRC', (b) => { b.datagram(4)[20]! ^= 1 }, STOP.ICRC],
      ['bad ICRC in the ICRC itself', (b) => { b.datagram(4)[b.datagram(4).length - 1]! ^= 0x80 }, STOP.ICRC],
      ['foreign QP', (b) => { b.slab.set(datagram({ ...specs[4]!, qpn: QPN + 1 }, V4), b.meta[4 * META + 7]!) }, STOP.HEADER],
      ['gap', (b) => { b.slab.set(datagram({ ...specs[4]!, psn: 105 }, V4), b.meta[4 * META + 7]!) }, STOP.PSN],
      ['duplicate', (b) => { b.slab.set(datagram({ ...specs[4]!, psn: 103 }, V4), b.meta[4 * META + 7]!) }, STOP.PSN],
      ['another source port', (b) => { b.meta[4 * META + 1] = 50124 }, STOP.SOURCE],
      ['another source address', (b) => { b.meta[4 * META + 3] = 0x0a010209 }, STOP.SOURCE],
      ['a SEND middle inside a WRITE', (b) => { b.slab.set(datagram({ ...specs[4]!, opcode: RcOpcode.SEND_MIDDLE }, V4), b.meta[4 * META + 7]!) }, STOP.HEADER],
      ['a WRITE_LAST with immediate', (b) => { b.datagram(4)[0] = RcOpcode.RDMA_WRITE_LAST_WITH_IMMEDIATE }, STOP.HEADER],
      ['a short middle', (b) => { b.meta[4 * META] = 16 + 512 }, STOP.BOUNDS],
      ['an oversized datagram (cut short)', (b) => { b.meta[4 * META] = -9000 }, STOP.LENGTH],
      ['a non-default P_Key', (b) => { b.datagram(4)[2] = 0x00 }, STOP.HEADER],
      ['transport version 1', (b) => { b.datagram(4)[1] = 1 }, STOP.HEADER],
    ]
    for (const [what, spoil, reason] of cases) {
      const b = new Batch()
      for (const s of specs) b.add(datagram(s, V4))
      spoil(b)
      const target = new Uint8Array(message.length)
      const r = runs.run(b.slab, b.meta, 0, b.count, QPN, V4, writePlan(target, pmtu, 100, pmtu))
      expect(r.packets, what).toBe(4)
      expect(r.bytes, what).toBe(4 * pmtu)
      expect(r.ended, what).toBe(false)
      expect(runs.lastStop, what).toEqual({ reason, index: 4 })
      expect(Buffer.from(target.subarray(pmtu, 5 * pmtu)).equals(Buffer.from(message.subarray(pmtu, 5 * pmtu))), what).toBe(true)
      expect(target.subarray(5 * pmtu).every((x) => x === 0), `${what}: nothing placed past the stop`).toBe(true)
      // The per-packet path takes it from there: the next run starts after the spoiled packet.
      if (reason !== STOP.PSN && reason !== STOP.SOURCE) {
        const again = runs.run(b.slab, b.meta, 5, b.count, QPN, V4, writePlan(target, pmtu, 105, 6 * pmtu))
        expect(again.packets, `${what}: the run after it`).toBe(specs.length - 5)
        expect(again.ended).toBe(true)
      }
    }
  })

  it('a WRITE never goes past its target: a last packet that does not fill it exactly, or a middle past its end, stops the run', () => {
    const pmtu = 1024
    const message = fill(pmtu * 4, 9)
    const specs = writePackets(message, pmtu, 0)
    const b = new Batch()
    for (const s of specs) b.add(datagram(s, V6))
    // The target is one byte shorter than the packets: the last one does not fit.
    const short = new Uint8Array(message.length - 4)
    const r = runs.run(b.slab, b.meta, 0, b.count, QPN, V6, { ...writePlan(short, pmtu, 0, pmtu), lastPayload: pmtu })
    expect(r.packets).toBe(2)
    expect(runs.lastStop.reason).toBe(STOP.BOUNDS)
    // A target shorter than the middles.
    const tiny = new Uint8Array(pmtu + 100)
    expect(runs.run(b.slab, b.meta, 0, b.count, QPN, V6, writePlan(tiny, pmtu, 0, pmtu)).packets).toBe(0)
    expect(runs.lastStop).toEqual({ reason: STOP.BOUNDS, index: 0 })
  })

  it('SEND: payloads are scattered over the receive SGEs; a SEND_LAST is taken only at full size', () => {
    const pmtu = 1024
    const message = fill(pmtu * 6, 11)
    const specs: Spec[] = []
    for (let k = 1; k < 6; k++) specs.push({ opcode: k === 5 ? RcOpcode.SEND_LAST : RcOpcode.SEND_MIDDLE, psn: 500 + k - 1, payload: message.subarray(k * pmtu, (k + 1) * pmtu), ipId: k })
    const b = new Batch()
    for (const s of specs) b.add(datagram(s, V4))
    const backing = new Uint8Array(pmtu * 8).fill(0xee)
    // SGEs of odd sizes with guard bytes between them.
    const views = [backing.subarray(0, 1000), backing.subarray(1100, 3100), backing.subarray(3200, 3201), backing.subarray(3300, 7400)]
    const plan: ReceiveRunPlan = { psn: 500, pmtu, opMiddle: RcOpcode.SEND_MIDDLE, opLast: RcOpcode.SEND_LAST, targets: views, offset: 0, exact: false, lastPayload: pmtu }
    const r = runs.run(b.slab, b.meta, 0, b.count, QPN, V4, plan)
    expect(r).toMatchObject({ packets: 5, bytes: 5 * pmtu, ended: true })
    const got = Buffer.concat(views).subarray(0, 5 * pmtu)
    expect(got.equals(Buffer.from(message.subarray(pmtu)))).toBe(true)
    for (const [from, to] of [[1000, 1100], [3100, 3200], [3201, 3300], [7400, backing.length]] as const) {
      expect(backing.subarray(from, to).every((x) => x === 0xee), `guard ${from}..${to}`).toBe(true)
    }
    // A short SEND_LAST is left to the per-packet path (its length is not known in advance).
    const b2 = new Batch()
    for (const s of specs.slice(0, 4)) b2.add(datagram(s, V4))
    b2.add(datagram({ ...specs[4]!, payload: message.subarray(5 * pmtu, 5 * pmtu + 10) }, V4))
    expect(runs.run(b2.slab, b2.meta, 0, b2.count, QPN, V4, plan).packets).toBe(4)
    expect(runs.lastStop.reason).toBe(STOP.LENGTH)
    // More than the receive holds.
    const small: ReceiveRunPlan = { ...plan, targets: [new Uint8Array(2 * pmtu + 5)] }
    expect(runs.run(b.slab, b.meta, 0, b.count, QPN, V4, small).packets).toBe(2)
    expect(runs.lastStop.reason).toBe(STOP.BOUNDS)
  })

  it('refuses bad arguments with TypeErrors naming them', () => {
    const b = new Batch().add(datagram({ opcode: RcOpcode.RDMA_WRITE_MIDDLE, psn: 0, payload: new Uint8Array(1024) }, V4))
    const p = new Uint32Array(9)
    const s = new Uint32Array(34)
    const o = new Int32Array(8)
    p[4] = 1024
    expect(() => addon.receiveRun(b.slab, b.meta, 0, 2000, p, s, [], o)).toThrow(/first and end/)
    expect(() => addon.receiveRun(b.slab, b.meta, 1, 0, p, s, [], o)).toThrow(/first and end/)
    expect(() => addon.receiveRun(b.slab, b.meta, 0, 1, new Uint32Array(3), s, [], o)).toThrow(/params/)
    expect(() => addon.receiveRun(b.slab, b.meta, 0, 1, p, new Uint32Array(3), [], o)).toThrow(/seeds/)
    expect(() => addon.receiveRun(b.slab, b.meta, 0, 1, p, s, [new Uint16Array(3) as unknown as Uint8Array], o)).toThrow(/targets/)
    expect(() => addon.receiveRun(b.slab, b.meta, 0, 1, p, s, [], new Int32Array(2))).toThrow(/out/)
    expect(() => addon.receiveRun(b.slab, new Uint32Array(8) as unknown as Int32Array, 0, 1, p, s, [], o)).toThrow(/meta/)
    const odd = Uint32Array.from(p)
    odd[4] = 1022
    expect(() => addon.receiveRun(b.slab, b.meta, 0, 1, odd, s, [], o)).toThrow(/pmtu/)
    const far = Uint32Array.from(p)
    far[5] = 10
    expect(() => addon.receiveRun(b.slab, b.meta, 0, 1, far, s, [new Uint8Array(4)], o)).toThrow(/offset/)
  })
})

// ---- the fuzz

interface ModelResult { packets: number; bytes: number; ended: boolean; acks: number; solved: number }

/**
 * The rules of a run, from the per-packet path: what decodePacket accepts, the ICRC check of
 * icrc-check.ts (IPv4: any ID), the responder's sequence, size and bounds checks; plus the run's
 * own limits (one source, a middle at full size, a last of the expected length).
 */
function model(b: Batch, first: number, end: number, ip: IpContext, plan: ReceiveRunPlan, total: number, place: (at: number, bytes: Uint8Array) => void): ModelResult {
  const res: ModelResult = { packets: 0, bytes: 0, ended: false, acks: 0, solved: 0 }
  const m = b.meta
  let at = plan.offset
  for (let i = first; i < end; i++) {
    const len = m[i * META]!
    const off = m[i * META + 7]!
    if (len < 16 || len > 8192 || off < 0 || off + len > b.slab.length) break
    let same = true
    for (let w = 1; w < 7; w++) if (m[i * META + w] !== m[first * META + w]) same = false
    if (!same) break
    const d = b.slab.subarray(off, off + len)
    const pkt = tryDecodePacket(d)
    if (isWireError(pkt)) break
    const op = pkt.bth.opcode
    const last = op === plan.opLast
    if ((op !== plan.opMiddle && !last) || (pkt.bth.pkey & 0x7fff) !== 0x7fff || pkt.bth.destQpn !== QPN) break
    if (pkt.bth.psn !== ((plan.psn + res.packets) & 0xffffff)) break
    const n = pkt.payload.length
    const left = total - at
    if (!last ? len !== bthOnlyDatagram(plan.pmtu) || pkt.bth.padCount !== 0 || n > left : n > plan.pmtu || (plan.exact ? n !== left : n > left)) break
    if (len !== bthOnlyDatagram(plan.pmtu) && len !== bthOnlyDatagram(plan.lastPayload)) break
    if (ip.family === 6) {
      if (!verifyIcrc(d, ip)) break
    } else {
      const id = solveIpv4Id(d, ip)
      if (id === undefined) break
      if (id !== 0) res.solved++
    }
    place(at, pkt.payload)
    at += n
    res.packets++
    res.bytes += n
    if (pkt.bth.ackReq) res.acks++
    if (last) {
      res.ended = true
      break
    }
  }
  return res
}

describe('receiveRun fuzz: random and mutated batches against the model, nothing written outside the target', () => {
  it('at least 100,000 packets', () => {
    const runs = new ReceiveRuns(addon)
    const r = seededRandom(20261206)
    const int = (n: number): number => Math.floor(r() * n)
    let packets = 0
    let consumed = 0
    let cases = 0
    const stops = new Map<number, number>()
    while (packets < 100_000) {
      cases++
      const ip = r() < 0.5 ? V4 : V6
      const pmtu = [256, 1024, 4096][int(3)]!
      const write = r() < 0.6
      const count = 1 + int(40)
      const size = pmtu * count + 1 + int(pmtu) // the first packet's payload + the run's
      const message = fill(size, cases)
      const psn = int(1 << 24)
      const specs = write
        ? writePackets(message, pmtu, psn, r() < 0.8)
        : writePackets(message, pmtu, psn, r() < 0.8).map((s) => ({ ...s, opcode: s.opcode === RcOpcode.RDMA_WRITE_LAST ? RcOpcode.SEND_LAST : RcOpcode.SEND_MIDDLE }))
      const b = new Batch()
      for (const s of specs) b.add(datagram(s, ip))
      const slots = specs.map((_, i) => b.meta[i * META + 7]!)
      // Mutations: bytes flipped (header, payload, ICRC), lengths and offsets changed, packets
      // swapped, repeated or left out, other sources, other QPNs, random garbage.
      const mutations = int(4)
      for (let k = 0; k < mutations && b.count > 0; k++) {
        const i = int(b.count)
        const d = b.slab.subarray(slots[i]!, slots[i]! + datagram(specs[i]!, ip).length)
        switch (int(9)) {
          case 0: d[int(Math.min(d.length, 16))]! ^= 1 << int(8); break
          case 1: d[int(d.length)]! ^= 1 << int(8); break
          case 2: b.meta[i * META] = b.meta[i * META]! + (int(3) - 1) * 4 * (1 + int(4)); break
          case 3: b.meta[i * META + 7] = r() < 0.5 ? int(b.slab.length) : b.slab.length - int(64); break
          case 4: { const j = int(b.count); for (const w of [0, 7]) { const t = b.meta[i * META + w]!; b.meta[i * META + w] = b.meta[j * META + w]!; b.meta[j * META + w] = t } break }
          case 5: b.meta[i * META + 1 + int(6)]! ^= 1; break
          case 6: b.slab.set(datagram({ ...specs[i]!, qpn: QPN ^ (1 + int(0xff)) }, ip), slots[i]!); break
          case 7: d.set(fill(d.length, cases * 31 + k)); break
          case 8: b.meta[i * META] = [0, 4, 12, 9000, -4112, 8192][int(6)]!; break
        }
      }
      packets += b.count
      const guard = 64 + int(64)
      const backing = fill(size + 2 * guard, cases ^ 0x5555)
      const before = Uint8Array.from(backing)
      const target = backing.subarray(guard, guard + size)
      const targets = write || r() < 0.5 ? [target] : [target.subarray(0, size >> 1), target.subarray(size >> 1)]
      const plan: ReceiveRunPlan = write
        ? { psn, pmtu, opMiddle: RcOpcode.RDMA_WRITE_MIDDLE, opLast: RcOpcode.RDMA_WRITE_LAST, targets, offset: pmtu, exact: true, lastPayload: lastPayloadOf(size, pmtu) }
        : { psn, pmtu, opMiddle: RcOpcode.SEND_MIDDLE, opLast: RcOpcode.SEND_LAST, targets, offset: pmtu, exact: false, lastPayload: pmtu }
      const want = Uint8Array.from(backing)
      const first = r() < 0.9 ? 0 : int(b.count + 1)
      const expected = model(b, first, b.count, ip, plan, size, (at, bytes) => want.set(bytes, guard + at))
      const got = runs.run(b.slab, b.meta, first, b.count, QPN, ip, plan)
      expect({ packets: got.packets, bytes: got.bytes, ended: got.ended, acks: got.ackRequests, solved: got.solved }, `case ${cases}`).toEqual(expected)
      // Byte for byte what the model placed, and the guards untouched.
      if (!Buffer.from(backing).equals(Buffer.from(want))) throw new Error(`case ${cases}: the target differs from the model's`)
      expect(Buffer.from(backing.subarray(0, guard)).equals(Buffer.from(before.subarray(0, guard)))).toBe(true)
      expect(Buffer.from(backing.subarray(guard + size)).equals(Buffer.from(before.subarray(guard + size)))).toBe(true)
      consumed += got.packets
      stops.set(runs.lastStop.reason, (stops.get(runs.lastStop.reason) ?? 0) + 1)
    }
    expect(packets).toBeGreaterThanOrEqual(100_000)
    // The fuzz exercised both outcomes: long runs and every kind of stop.
    expect(consumed).toBeGreaterThan(packets / 4)
    for (const reason of [STOP.LENGTH, STOP.SOURCE, STOP.HEADER, STOP.PSN, STOP.ICRC, STOP.BOUNDS, STOP.LAST]) expect(stops.get(reason) ?? 0, `stops for reason ${reason}`).toBeGreaterThan(0)
  }, 120_000)
})
