/**
 * Selective repeat between softroce peers: negotiated only when both ends announce it (kernel rxe
 * and NICs announce nothing: go-back-N, no SACK bytes on the wire); over a lossy, duplicating,
 * reordering link the responder holds packets past gaps and SACK NAKs name the missing PSNs, the
 * requester sends only those again, and the data lands byte-exact; SACK NAKs are well-formed
 * RoCEv2 packets to tshark; hostile SACKs (bitmaps naming PSNs never sent, malformed blocks, a
 * SACK to a go-back-N QP) are dropped and counted without effect.
 */
import dgram from 'node:dgram'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { QueuePair } from '@rdma-session/core'
import type { SoftRoceQp } from '../../src/rc/queue-pair.js'
import { appendIcrc, verifyIcrc } from '../../src/wire/icrc.js'
import { encodePacket } from '../../src/wire/packet.js'
import { RcOpcode } from '../../src/wire/opcodes.js'
import { psnAdd } from '@rdma-session/rc-engine'
import { encodeSack, parseSack } from '../../src/wire/sack.js'
import { readPcap } from '../wire/pcap-reader.js'
import { one, tshark, tsharkExpert } from '../wire/tshark.js'
import { attackedWrite, onPeerAddress } from './attacked-write.js'
import { connect, openPair, pattern, register, type Pair } from './harness.js'

let pair: Pair | null = null
let attacker: dgram.Socket | null = null
afterEach(async () => {
  attacker?.close()
  attacker = null
  await pair?.close()
  pair = null
})
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'selective-repeat-'))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

const qpOf = (p: Pair, side: 'a' | 'b', qp: QueuePair): SoftRoceQp => (side === 'a' ? p.da : p.db).qp(qp.qpn)!
const SEQ_NAK = 0x60

/** WRITEs and SENDs of `size` bytes each way A -> B, all signaled; returns once every completion arrived, checking every byte. */
async function transfer(p: Pair, qa: QueuePair, qb: QueuePair, total: number, size: number): Promise<void> {
  const ma = register(p.a, total)
  const mb = register(p.b, total)
  ma.bytes.set(pattern(total, 41))
  const pending: Promise<unknown>[] = []
  for (let off = 0, i = 0; off < total; off += size, i++) {
    const len = Math.min(size, total - off)
    if (i % 2 === 0) pending.push(qa.write(ma.slice(off, len), mb.region(off, len)))
    else {
      pending.push(qb.recv(mb.slice(off, len)))
      pending.push(qa.send(ma.slice(off, len)))
    }
  }
  await Promise.all(pending)
  expect(Buffer.from(mb.bytes).equals(Buffer.from(ma.bytes)), 'B holds every byte A sent').toBe(true)
}

describe('negotiation', () => {
  it('is on only when both ends announce it; a remote without extensions (kernel rxe, NICs) gets go-back-N', async () => {
    pair = await openPair()
    const both = connect(pair)
    expect([qpOf(pair, 'a', both.qa).selectiveRepeat, qpOf(pair, 'b', both.qb).selectiveRepeat]).toEqual([true, true])
    const rxeLike = connect(pair, { addressOnly: true })
    expect([qpOf(pair, 'a', rxeLike.qa).selectiveRepeat, qpOf(pair, 'b', rxeLike.qb).selectiveRepeat]).toEqual([false, false])
    await pair.close()
    pair = await openPair({}, { selectiveRepeat: false })
    const oneSided = connect(pair)
    expect([qpOf(pair, 'a', oneSided.qa).selectiveRepeat, qpOf(pair, 'b', oneSided.qb).selectiveRepeat]).toEqual([false, false])
  })
})

describe.each([
  { path: 'selective repeat', selectiveRepeat: true },
  { path: 'go-back-N', selectiveRepeat: false },
])('over a lossy, duplicating, reordering link ($path)', ({ selectiveRepeat }) => {
  it('8 MiB of WRITEs and SENDs land byte-exact; the wire carries SACK NAKs only with selective repeat, each well-formed to tshark', async () => {
    const file = path.join(tmp, `${selectiveRepeat ? 'sr' : 'gbn'}.pcap`)
    const impairment = { loss: 0.03, duplicate: 0.01, reorder: 0.01 }
    pair = await openPair({ impairment: { ...impairment, seed: 3 }, windowBytes: 256 * 1024, selectiveRepeat }, { impairment: { ...impairment, seed: 4 }, windowBytes: 256 * 1024, selectiveRepeat, capture: file })
    const { qa, qb } = connect(pair, { mtu: 4096, caps: { maxSendWr: 64, maxRecvWr: 64 } })
    await transfer(pair, qa, qb, 8 << 20, 256 * 1024)
    const a = pair.da.counters
    const b = pair.db.counters
    const lost = pair.da.impairment.stats.lost
    console.info(`[selective repeat ${selectiveRepeat}] A lost ${lost} (B lost ${pair.db.impairment.stats.lost}), retransmits ${a.retransmits}, SACKs ${a.sackNaksReceived}/${b.sackNaksSent}, held ${b.outOfOrderBuffered}, overflows ${b.reorderOverflows}, probes ${a.tailProbes}, timeouts ${a.timeouts}`)
    expect(lost, 'the link lost request packets').toBeGreaterThan(0)
    if (selectiveRepeat) {
      expect(b.sackNaksSent, 'B reported gaps').toBeGreaterThan(0)
      expect(a.sackNaksReceived, 'A honored SACK NAKs').toBeGreaterThan(0)
      expect(b.outOfOrderBuffered, 'B held packets past gaps').toBeGreaterThan(0)
      expect(b.reorderOverflows, 'equal windows: nothing beyond the reorder window').toBe(0)
      // Only what was lost goes again (plus the odd spurious one after a reordering, and probes).
      expect(a.retransmits, `${a.retransmits} retransmits for ${lost} lost`).toBeLessThanOrEqual(2 * lost + 64)
    } else {
      expect(a.sackNaksReceived + b.sackNaksSent + b.outOfOrderBuffered).toBe(0)
    }
    await pair.close()
    pair = null

    // Every ACKNOWLEDGE B sent: a SACK block after the AETH exactly when selective repeat is on.
    const { datagrams } = readPcap(fs.readFileSync(file))
    expect(datagrams.filter((d) => !verifyIcrc(d.udpPayload, d.ip))).toEqual([])
    const acks = datagrams.filter((d) => d.udpPayload[0] === RcOpcode.ACKNOWLEDGE)
    const sacks = acks.filter((d) => d.udpPayload.length > 12 + 4 + 4)
    if (!selectiveRepeat) {
      expect(sacks, 'no ACK with extra bytes toward a go-back-N peer').toEqual([])
      return
    }
    expect(sacks.length).toBeGreaterThan(0)
    for (const d of sacks) {
      expect(d.udpPayload[12], 'a SACK NAK is a PSN sequence NAK').toBe(SEQ_NAK)
      expect(parseSack(d.udpPayload.subarray(16, d.udpPayload.length - 4)), 'a well-formed SACK block').not.toBeNull()
    }
    const ports = [...new Set(datagrams.flatMap((d) => [d.ip.srcPort, d.ip.dstPort]))]
    const frames = tshark(file, { ports })
    expect(frames).toHaveLength(datagrams.length)
    const sackFrames = new Set(datagrams.flatMap((d, i) => (d.udpPayload[0] === RcOpcode.ACKNOWLEDGE && d.udpPayload.length > 20 ? [String(i + 1)] : [])))
    const decoded = frames.filter((l) => sackFrames.has(one(l, 'frame.number') ?? ''))
    expect(decoded.map((l) => [one(l, 'infiniband.bth.opcode'), one(l, 'infiniband.aeth.syndrome')]).filter(([op, s]) => op !== '17' || s !== '96'), 'tshark reads each SACK NAK as an ACKNOWLEDGE with a PSN sequence NAK').toEqual([])
    expect(frames.filter((l) => l['_ws.malformed'] !== undefined).map((l) => one(l, 'frame.number')), 'malformed frames').toEqual([])
    expect(frames.filter((l) => l['_ws.expert.severity'] !== undefined).map((l) => one(l, 'frame.number')), 'frames with expert info').toEqual([])
    expect(tsharkExpert(file, ports), 'tshark -z expert').toEqual([])
  }, 60_000)
})

describe.each([
  { path: 'selective repeat', selectiveRepeat: true },
  { path: 'go-back-N', selectiveRepeat: false },
])('READ responses over a lossy link ($path)', ({ selectiveRepeat }) => {
  it('an 8 MiB READ lands byte-exact; with selective repeat responses past a gap are placed and only the missing ones are asked for again', async () => {
    const size = 8 << 20
    pair = await openPair({ windowBytes: 256 * 1024, selectiveRepeat }, { impairment: { loss: 0.03, seed: 12 }, windowBytes: 256 * 1024, selectiveRepeat })
    const { qa } = connect(pair, { mtu: 4096 })
    const ma = register(pair.a, size)
    const mb = register(pair.b, size)
    const data = pattern(size, 43)
    mb.bytes.set(data)
    await qa.read(ma.slice(0, size), mb.region(0, size))
    expect(Buffer.from(ma.bytes).equals(data), 'A holds every byte of B').toBe(true)
    const responses = size / 4096
    const sent = pair.db.counters.packetsSent
    console.info(`[selective repeat ${selectiveRepeat}] READ: B lost ${pair.db.impairment.stats.lost}, sent ${sent} packets for ${responses} responses, A placed ${pair.da.counters.outOfOrderBuffered} past gaps`)
    if (selectiveRepeat) {
      expect(pair.da.counters.outOfOrderBuffered, 'A placed responses past gaps').toBeGreaterThan(0)
      // Each lost response is sent again (a lost re-request or retry can cost a piece).
      expect(sent, 'B sent little more than the responses').toBeLessThanOrEqual(responses + 4 * pair.db.impairment.stats.lost + 64)
    } else expect(pair.da.counters.outOfOrderBuffered).toBe(0)
  }, 60_000)
})

describe('reorder window', () => {
  it('a requester window larger than the responder\'s reorder window: packets beyond it are dropped and counted, the data still lands byte-exact', async () => {
    // A may have 64 packets of 4 KiB in flight; B holds at most 16 (64 KiB / 4 KiB) past a gap.
    pair = await openPair({ impairment: { loss: 0.03, seed: 8 }, windowBytes: 256 * 1024 }, { windowBytes: 64 * 1024 })
    const { qa, qb } = connect(pair, { mtu: 4096, caps: { maxSendWr: 64, maxRecvWr: 64 } })
    await transfer(pair, qa, qb, 4 << 20, 256 * 1024)
    const b = pair.db.counters
    expect(b.outOfOrderBuffered).toBeGreaterThan(0)
    expect(b.reorderOverflows, 'packets past the 16-packet reorder window').toBeGreaterThan(0)
  }, 60_000)
})

describe('encrypted QPs', () => {
  it('SACK NAKs are sealed and opened like any packet: 4 MiB over a lossy link lands byte-exact', async () => {
    pair = await openPair({ impairment: { loss: 0.03, seed: 5 }, windowBytes: 256 * 1024 }, { windowBytes: 256 * 1024 })
    const key = (n: number): Uint8Array => new Uint8Array(32).fill(n)
    const { qa, qb } = connect(pair, { mtu: 4096, caps: { maxSendWr: 64, maxRecvWr: 64 }, encryption: { keyAB: key(1), keyBA: key(2) } })
    await transfer(pair, qa, qb, 4 << 20, 256 * 1024)
    expect(pair.da.counters.sackNaksReceived, 'A opened and honored sealed SACK NAKs').toBeGreaterThan(0)
    expect(pair.da.counters.drops.decryptFailure + pair.da.counters.drops.malformed).toBe(0)
  }, 60_000)
})

// ---- hostile SACK NAKs

const MTU = 1024
const SIZE = 2 << 20
const PSN_A = 0xfff000
/** 2 MiB at 2 MB/s: in flight for about a second, a SACK bitmap's reach (1024 PSNs) ahead of what was sent for half of it. */
const RATE = 2_000_000
const ATTACKED = { size: SIZE, mtu: MTU, psnA: PSN_A, rate: RATE, seed: 29, keepExtensions: true } as const

/** A SACK NAK (an ACKNOWLEDGE with `ext` after its AETH) from `from` to QP `destQpn` of the device on `port`. */
function forgedSack(from: dgram.Socket, port: number, destQpn: number, psn: number, ext: Uint8Array, syndrome = SEQ_NAK): Buffer {
  const ip = { family: 4 as const, src: '127.0.0.1', dst: '127.0.0.1', srcPort: from.address().port, dstPort: port, ipId: 0 }
  const bth = { opcode: RcOpcode.ACKNOWLEDGE, solicited: false, migReq: false, padCount: 0, tver: 0, pkey: 0xffff, fecn: false, becn: false, destQpn, ackReq: false, psn: psn & 0xffffff }
  // encodePacket refuses bytes after an ACKNOWLEDGE's AETH: the headers, then the block, then the ICRC.
  const headers = encodePacket({ bth, aeth: { syndrome, msn: 0 }, payload: new Uint8Array(0) })
  return appendIcrc(Buffer.concat([headers, ext]), ip)
}

/** A bitmap with one bit set at `offset` (PSN nakPsn + 1 + offset). */
function bitAt(offset: number): Uint8Array {
  const words = Math.floor(offset / 32) + 1
  const bm = new Uint32Array(words)
  bm[words - 1] = 1 << (offset % 32)
  return encodeSack(bm, words)
}

describe('hostile SACK NAKs', () => {
  it('a bitmap naming PSNs not sent is dropped as badSack, a malformed block as malformed; the WRITE completes byte-exact', async () => {
    pair = await openPair()
    attacker = await onPeerAddress()
    const port = pair.da.info.port
    const { exact, forged } = await attackedWrite(pair, attacker!, ATTACKED, (qpn, frontier) => {
      // The NAK PSN just behind what was sent; its bitmap reaches 1000 PSNs past it.
      const at = psnAdd(frontier, -1)
      const badMagic = bitAt(3)
      badMagic[0] = 0x00
      return [forgedSack(attacker!, port, qpn, at, bitAt(1000)), forgedSack(attacker!, port, qpn, at, badMagic), forgedSack(attacker!, port, qpn, at, bitAt(3).subarray(0, 6))]
    })
    const drops = pair.da.counters.drops
    expect(exact, `B held every byte at completion (forged ${forged}, drops ${JSON.stringify(drops)})`).toBe(true)
    expect(drops.badSack, JSON.stringify(drops)).toBeGreaterThan(0)
    expect(drops.malformed, JSON.stringify(drops)).toBeGreaterThan(0)
    expect(pair.da.counters.sackNaksReceived, 'no forged SACK was honored').toBe(0)
  })

  it('a SACK NAK to a go-back-N QP is malformed there and changes nothing', async () => {
    pair = await openPair({}, { selectiveRepeat: false })
    attacker = await onPeerAddress()
    const port = pair.da.info.port
    const { exact } = await attackedWrite(pair, attacker!, ATTACKED, (qpn, frontier) => [forgedSack(attacker!, port, qpn, psnAdd(frontier, -1), bitAt(0))])
    expect(exact).toBe(true)
    expect(pair.da.counters.drops.malformed).toBeGreaterThan(0)
    expect(pair.da.counters.sackNaksReceived).toBe(0)
  })
})
