/**
 * Drops and error statuses: bad ICRC and unknown QPN are dropped and counted;
 * rkey violations NAK with REM_ACCESS_ERR and leave memory untouched; RNR and
 * transport retries run out; a duplicated atomic is answered from the replay
 * record, never executed twice.
 */
import dgram from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeWithIcrc } from '../../src/wire/icrc.js'
import { RcOpcode } from '../../src/wire/opcodes.js'
import { connect, openPair, pattern, register, sleep, statusOf, type Pair } from './harness.js'

let pair: Pair | null = null
afterEach(async () => {
  await pair?.close()
  pair = null
})

async function rawSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4')
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r))
  return s
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = performance.now() + ms
  while (!cond() && performance.now() < end) await sleep(5)
}

describe('drops', () => {
  it('a packet with a bad ICRC is dropped and counted; a valid one to an unknown QPN is counted too', async () => {
    pair = await openPair()
    const { qb } = connect(pair)
    const s = await rawSocket()
    const ip = { family: 4 as const, src: '127.0.0.1', dst: '127.0.0.1', srcPort: s.address().port, dstPort: pair.db.info.port, ipId: 0 }
    const bth = { opcode: RcOpcode.SEND_ONLY, solicited: false, migReq: false, padCount: 0, tver: 0, pkey: 0xffff, fecn: false, becn: false, destQpn: qb.qpn, ackReq: true, psn: 0 }
    const bad = encodeWithIcrc({ bth, payload: Buffer.from('hello world!') }, ip)
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff
    let unknownQpn = (qb.qpn ^ 0x5a5a5a) & 0xffffff
    while (pair.db.qp(unknownQpn) !== undefined || unknownQpn < 2) unknownQpn = (unknownQpn + 7) & 0xffffff
    const stray = encodeWithIcrc({ bth: { ...bth, destQpn: unknownQpn }, payload: Buffer.from('hello world!') }, ip)
    s.send(bad, ip.dstPort, '127.0.0.1')
    s.send(stray, ip.dstPort, '127.0.0.1')
    s.send(Buffer.from([1, 2, 3]), ip.dstPort, '127.0.0.1')
    await until(() => pair!.db.counters.drops.unknownQpn > 0 && pair!.db.counters.drops.badIcrc > 0 && pair!.db.counters.drops.malformed > 0)
    s.close()
    expect(pair.db.counters.drops).toMatchObject({ badIcrc: 1, unknownQpn: 1, malformed: 1 })
  })

  it('packets corrupted on the link are dropped as bad ICRC and recovered by retransmission', async () => {
    pair = await openPair({ impairment: { corrupt: 1, limit: 3, seed: 3 } }, {})
    const { qa } = connect(pair)
    const ma = register(pair.a, 65536)
    const mb = register(pair.b, 65536)
    const data = pattern(20_000, 9)
    ma.bytes.set(data)
    await qa.write(ma.slice(0, data.length), mb.region(0, data.length))
    expect(Buffer.from(mb.bytes.subarray(0, data.length)).equals(data)).toBe(true)
    expect(pair.db.counters.drops.badIcrc + pair.db.counters.drops.malformed + pair.db.counters.drops.unknownQpn).toBeGreaterThanOrEqual(1)
  })

  it('packets for a QP not in RTR/RTS are dropped as wrong state', async () => {
    pair = await openPair()
    const { qa, qb } = connect(pair)
    qb.modify({ state: 'ERR' })
    const ma = register(pair.a, 64)
    const mb = register(pair.b, 64)
    const w = qa.write(ma.slice(0, 64), mb.region(0, 64))
    await until(() => pair!.db.counters.drops.wrongState > 0)
    expect(pair.db.counters.drops.wrongState).toBeGreaterThan(0)
    qa.modify({ state: 'ERR' })
    expect(await statusOf(w)).toBe('WR_FLUSH_ERR')
  })
})

describe('error statuses', () => {
  it('an out-of-range rkey gives REM_ACCESS_ERR; the target is untouched and the violation counted', async () => {
    pair = await openPair()
    const { qa } = connect(pair)
    const ma = register(pair.a, 8192)
    const mb = register(pair.b, 4096)
    mb.bytes.set(pattern(4096, 1))
    const before = Buffer.from(mb.bytes)
    ma.bytes.set(pattern(8192, 2))
    expect(await statusOf(qa.write(ma.slice(0, 8192), { addr: mb.addr + 4096 - 4000, rkey: mb.rkey, length: 8192 }))).toBe('REM_ACCESS_ERR')
    expect(Buffer.from(mb.bytes).equals(before), 'target memory untouched').toBe(true)
    expect(qa.state).toBe('ERR')
    expect(pair.db.counters.drops.accessViolation).toBe(1)
    const later = qa.write(ma.slice(0, 8), mb.region(0, 8))
    expect(await statusOf(later)).toBe('WR_FLUSH_ERR')
  })

  it('RNR_RETRY_EXC_ERR after rnrRetry RNR NAKs when no receive is posted', async () => {
    pair = await openPair()
    const { qa } = connect(pair, { rnrRetry: 2, minRnrTimer: 1 })
    const ma = register(pair.a, 64)
    expect(await statusOf(qa.send(ma.slice(0, 16)))).toBe('RNR_RETRY_EXC_ERR')
    expect(pair.db.counters.rnrNaksSent).toBe(3)
    expect(pair.da.counters.rnrNaksReceived).toBe(3)
    expect(qa.state).toBe('ERR')
  })

  it('RETRY_EXC_ERR when the peer device is closed; later WRs flush in order', async () => {
    pair = await openPair()
    const { qa } = connect(pair, { retryCnt: 2, timeout: 12 })
    const ma = register(pair.a, 128)
    const remote = { addr: 0x10000, rkey: 1, length: 64 }
    await pair.b.close()
    const started = performance.now()
    const ops = [qa.write(ma.slice(0, 64), remote), qa.send(ma.slice(64, 64))]
    expect(await statusOf(ops[0]!)).toBe('RETRY_EXC_ERR')
    expect(await statusOf(ops[1]!)).toBe('WR_FLUSH_ERR')
    expect(performance.now() - started).toBeLessThan(2000)
    expect(pair.da.counters.timeouts).toBe(3)
    expect(qa.state).toBe('ERR')
  })

  it('a duplicated atomic (its ACK lost) is answered from the saved result and executed once', async () => {
    // Lose the first two ATOMIC_ACKNOWLEDGEs B sends: A retransmits, B sees duplicates.
    pair = await openPair({}, { impairment: { loss: 1, limit: 2, match: (p) => p[0] === RcOpcode.ATOMIC_ACKNOWLEDGE } })
    const { qa } = connect(pair)
    const ma = register(pair.a, 64)
    const mb = register(pair.b, 64)
    const view = Buffer.from(mb.bytes.buffer, mb.bytes.byteOffset, 64)
    view.writeBigUInt64LE(100n, 8)
    await qa.fetchAndAdd(ma.slice(0, 8), mb.region(8, 8), 1n)
    await qa.compareAndSwap(ma.slice(8, 8), mb.region(8, 8), 101n, 500n)
    const local = Buffer.from(ma.bytes.buffer, ma.bytes.byteOffset, 64)
    expect(local.readBigUInt64LE(0), 'FETCH_ADD returned the original').toBe(100n)
    expect(local.readBigUInt64LE(8), 'CMP_SWP returned the original').toBe(101n)
    expect(view.readBigUInt64LE(8), 'each atomic applied exactly once').toBe(500n)
    expect(pair.db.counters.duplicatesAnswered).toBeGreaterThanOrEqual(2)
    expect(pair.db.impairment.stats.lost).toBe(2)
  })

  it('a receive buffer too small: LOC_LEN_ERR at the receiver, REM_INV_REQ_ERR at the sender', async () => {
    pair = await openPair()
    const { qa, qb } = connect(pair)
    const ma = register(pair.a, 4096)
    const mb = register(pair.b, 4096)
    const recv = qb.recv(mb.slice(0, 100))
    const [s, r] = await Promise.all([statusOf(qa.send(ma.slice(0, 3000))), statusOf(recv)])
    expect([s, r]).toEqual(['REM_INV_REQ_ERR', 'LOC_LEN_ERR'])
  })

  it('READs beyond the responder\'s max_dest_rd_atomic: the first completes, the next gets REM_INV_REQ_ERR, the rest flush', async () => {
    pair = await openPair()
    // A requester that ignores the responder's limit (its max_rd_atomic 4 against B's 1).
    const { qa, qb } = connect(pair, { maxRdAtomicA: 4, maxDestRdAtomicB: 1 })
    const size = 256 * 1024 // 256 packets at MTU 1024: the first READ's responses are still queued when the second arrives
    const ma = register(pair.a, 4 * size)
    const mb = register(pair.b, 4 * size)
    mb.bytes.set(pattern(4 * size, 9))
    const reads = [0, 1, 2, 3].map((i) => statusOf(qa.read(ma.slice(i * size, size), mb.region(i * size, size))))
    expect(await Promise.all(reads)).toEqual(['SUCCESS', 'REM_INV_REQ_ERR', 'WR_FLUSH_ERR', 'WR_FLUSH_ERR'])
    expect(Buffer.from(ma.bytes.subarray(0, size)).equals(Buffer.from(mb.bytes.subarray(0, size))), 'the first READ is whole').toBe(true)
    expect(ma.bytes.subarray(size).every((b) => b === 0), 'nothing of the refused READs landed').toBe(true)
    expect(pair.db.counters.naksSent).toBeGreaterThanOrEqual(1)
    expect(qb.state).toBe('ERR')
  })

  it('READs within max_dest_rd_atomic all complete, however many are posted', async () => {
    pair = await openPair()
    const { qa } = connect(pair, { maxRdAtomicA: 2, maxDestRdAtomicB: 2 })
    const size = 64 * 1024
    const ma = register(pair.a, 8 * size)
    const mb = register(pair.b, 8 * size)
    mb.bytes.set(pattern(8 * size, 3))
    const reads = Array.from({ length: 8 }, (_, i) => statusOf(qa.read(ma.slice(i * size, size), mb.region(i * size, size))))
    expect(new Set(await Promise.all(reads))).toEqual(new Set(['SUCCESS']))
    expect(Buffer.from(ma.bytes).equals(Buffer.from(mb.bytes))).toBe(true)
  })

  it('READs larger than the window (several READ requests each) stay within max_dest_rd_atomic 1', async () => {
    // 256 KiB window at MTU 1024: a 257 KiB READ is requested in two pieces; the second must wait
    // for the first's responses, or the responder sees two outstanding READs from one WR.
    pair = await openPair({ windowBytes: 256 * 1024 })
    const { qa } = connect(pair, { maxRdAtomicA: 1, maxDestRdAtomicB: 1 })
    const size = 257 * 1024
    const ma = register(pair.a, 4 * size)
    const mb = register(pair.b, 4 * size)
    mb.bytes.set(pattern(4 * size, 5))
    const reads = [0, 1, 2, 3].map((i) => statusOf(qa.read(ma.slice(i * size, size), mb.region(i * size, size))))
    expect(await Promise.all(reads)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS'])
    expect(Buffer.from(ma.bytes).equals(Buffer.from(mb.bytes))).toBe(true)
    expect(pair.db.counters.naksSent).toBe(0)
  })

  it('with max_dest_rd_atomic 0 a READ and an atomic get REM_INV_REQ_ERR (as rxe)', async () => {
    for (const op of ['read', 'atomic'] as const) {
      pair = await openPair()
      const { qa } = connect(pair, { maxDestRdAtomicB: 0 })
      const ma = register(pair.a, 64)
      const mb = register(pair.b, 64)
      const done = op === 'read' ? qa.read(ma.slice(0, 8), mb.region(0, 8)) : qa.fetchAndAdd(ma.slice(0, 8), mb.region(0, 8), 1n)
      expect(await statusOf(done), op).toBe('REM_INV_REQ_ERR')
      expect(Buffer.from(mb.bytes).every((b) => b === 0), 'memory untouched').toBe(true)
      await pair.close()
      pair = null
    }
  })

  it('a misaligned atomic gets REM_INV_REQ_ERR', async () => {
    pair = await openPair()
    const { qa } = connect(pair)
    const ma = register(pair.a, 64)
    const mb = register(pair.b, 64)
    expect(await statusOf(qa.fetchAndAdd(ma.slice(0, 8), mb.region(4, 8), 1n))).toBe('REM_INV_REQ_ERR')
  })
})

describe('source check', () => {
  it('a valid packet for a QP from an address other than its remote is dropped as wrongSource', async () => {
    pair = await openPair()
    const { qb } = connect(pair)
    const s = dgram.createSocket('udp4')
    await new Promise<void>((r) => s.bind(0, '127.0.0.2', r))
    const ip = { family: 4 as const, src: '127.0.0.2', dst: '127.0.0.1', srcPort: s.address().port, dstPort: pair.db.info.port, ipId: 0 }
    const bth = { opcode: RcOpcode.SEND_ONLY, solicited: false, migReq: false, padCount: 0, tver: 0, pkey: 0xffff, fecn: false, becn: false, destQpn: qb.qpn, ackReq: true, psn: 0 }
    s.send(encodeWithIcrc({ bth, payload: Buffer.from('spoofed!') }, ip), ip.dstPort, '127.0.0.1')
    await until(() => pair!.db.counters.drops.wrongSource > 0)
    s.close()
    expect(pair.db.counters.drops.wrongSource).toBe(1)
  })
})
