/** The SACK block of the selective-repeat extension: round trip, and every malformed block refused. */
import { describe, expect, it } from 'vitest'
import { encodeSack, MAX_SACK_WORDS, parseSack, sackHas, sackPsn, SACK_MAGIC, SACK_VERSION } from '../../src/wire/sack.js'
import { ReorderBuffer } from '../../src/rc/reorder-buffer.js'
import { SelectiveRetransmit } from '../../src/rc/selective-retransmit.js'
import type { RocePacket } from '../../src/wire/packet.js'

describe('SACK block', () => {
  it('round-trips a bitmap: the set bits, the highest one, and the PSNs they name across the wrap', () => {
    const bm = new Uint32Array([0b1011, 0, 0x80000000])
    const bytes = encodeSack(bm, 3)
    expect([...bytes.subarray(0, 4)]).toEqual([SACK_MAGIC, SACK_VERSION, 3, 0])
    const block = parseSack(bytes)!
    expect(block.highest).toBe(95)
    expect([0, 1, 2, 3, 94, 95].map((o) => sackHas(block, o))).toEqual([true, true, false, true, false, true])
    expect(sackHas(block, 5000)).toBe(false)
    expect(sackPsn(0xfffffe, 0)).toBe(0xffffff)
    expect(sackPsn(0xfffffe, 1)).toBe(0)
    expect(parseSack(encodeSack(new Uint32Array(1), 1))!.highest).toBe(-1)
  })

  it('refuses malformed blocks: short, unaligned, wrong magic/version/reserved, word count 0, too many or not matching the length', () => {
    const good = encodeSack(new Uint32Array([1, 2]), 2)
    const variant = (i: number, v: number): Uint8Array => {
      const b = good.slice()
      b[i] = v
      return b
    }
    for (const bad of [good.subarray(0, 4), good.subarray(0, 10), variant(0, 0x54), variant(1, 2), variant(3, 1), variant(2, 0), variant(2, 3), variant(2, MAX_SACK_WORDS + 1), new Uint8Array(8)]) {
      expect(parseSack(bad)).toBeNull()
    }
    expect(() => encodeSack(new Uint32Array(40), 33)).toThrow(RangeError)
    expect(() => encodeSack(new Uint32Array(1), 0)).toThrow(RangeError)
  })
})

const pkt = (psn: number, payload: number[]): RocePacket => ({ bth: { opcode: 7, solicited: false, migReq: false, padCount: 0, tver: 0, pkey: 0xffff, fecn: false, becn: false, destQpn: 1, ackReq: false, psn }, payload: Uint8Array.from(payload) }) as RocePacket

describe('reorder buffer', () => {
  it('holds within its window only, copies payloads, refuses duplicates, and reports what it holds as a bitmap', () => {
    const r = new ReorderBuffer(8)
    expect(r.capacity).toBe(8)
    const epsn = 0xfffffe
    const src = [1, 2, 3]
    const p = pkt(0, src)
    expect(r.hold(p, 2)).toBe('held')
    src[0] = 9
    expect([...p.payload]).toEqual([1, 2, 3])
    expect(r.hold(pkt(0, [5]), 2)).toBe('duplicate')
    expect(r.hold(pkt(6, []), 8)).toBe('overflow')
    expect(r.hold(pkt(3, []), 5)).toBe('held')
    expect(r.held).toBe(2)
    expect(r.highest(epsn)).toBe(5)
    const { bitmap, words } = r.sackBitmap(epsn)
    expect(words).toBe(1)
    expect(bitmap[0]).toBe(0b10010)
    expect(r.take(0xffffff)).toBeNull()
    expect(r.take(0)!.payload[0]).toBe(1)
    expect(r.held).toBe(1)
    r.clear()
    expect([r.held, r.highest(epsn)]).toEqual([0, 0])
  })

  it('caps its window at what one SACK block can describe', () => {
    expect(new ReorderBuffer(100_000).capacity).toBe(32 * MAX_SACK_WORDS)
  })
})

describe('selective retransmit queue', () => {
  it('records send order per PSN, queues each PSN once, and drains in order', () => {
    const s = new SelectiveRetransmit(4)
    s.sent(10)
    s.sent(11)
    s.sent(10)
    expect([s.sentOrder(10), s.sentOrder(11), s.sentOrder(12)]).toEqual([2, 1, -1])
    expect([s.enqueue(10), s.enqueue(10), s.enqueue(11)]).toEqual([true, false, true])
    expect(s.pending).toBe(2)
    expect([s.next(), s.next(), s.next()]).toEqual([10, 11, -1])
    expect(s.enqueue(10)).toBe(true)
    s.clear()
    expect(s.pending).toBe(0)
  })

  it('records at most 4,096 transmissions however large the window: an older PSN whose slot was reused reads as not recorded', () => {
    const s = new SelectiveRetransmit(16_384)
    expect([s.sentOrder(0), s.next()], 'nothing recorded before the first send').toEqual([-1, -1])
    for (let psn = 0; psn < 4096; psn++) s.sent(psn)
    expect([s.sentOrder(0), s.sentOrder(4095)]).toEqual([0, 4095])
    s.sent(4096)
    expect([s.sentOrder(0), s.sentOrder(1), s.sentOrder(4096)]).toEqual([-1, 1, 4096])
    let queued = 0
    while (s.enqueue(queued)) queued++
    expect(queued, 'the queue holds one PSN per slot').toBe(4096)
  })
})
