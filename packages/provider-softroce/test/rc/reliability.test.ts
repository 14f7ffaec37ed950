/**
 * Reliability: PSN wrap-around, and 16 MiB of mixed WRITE/READ/SEND traffic
 * over a lossy, duplicating, reordering link (seeded) that must end
 * sha256-identical with exactly one completion per WR.
 */
import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { WorkCompletion } from '@rdma-session/core'
import { connect, openPair, pattern, register, sleep, type Pair } from './harness.js'
import { seededRandom } from '@rdma-session/core'

let pair: Pair | null = null
afterEach(async () => {
  await pair?.close()
  pair = null
})

const sha = (...parts: Uint8Array[]): string => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest('hex')
}

describe('PSN wrap-around', () => {
  it('traffic crossing PSN 0xFFFFFF -> 0 in both directions is byte-exact', async () => {
    pair = await openPair()
    const { qa, qb } = connect(pair, { mtu: 1024, psnA: 0xfffff0, psnB: 0xfffffa })
    const ma = register(pair.a, 1 << 20)
    const mb = register(pair.b, 1 << 20)
    const w = pattern(64 * 1024, 1)
    ma.bytes.set(w, 0)
    await qa.write(ma.slice(0, w.length), mb.region(0, w.length))
    expect(Buffer.from(mb.bytes.subarray(0, w.length)).equals(w)).toBe(true)
    const r = pattern(100 * 1024, 2)
    mb.bytes.set(r, 200_000)
    await qa.read(ma.slice(200_000, r.length), mb.region(200_000, r.length))
    expect(Buffer.from(ma.bytes.subarray(200_000, 200_000 + r.length)).equals(r)).toBe(true)
    const s = pattern(20_000, 3)
    mb.bytes.set(s, 500_000)
    const recv = qa.recv(ma.slice(500_000, 20_000))
    await qb.send(mb.slice(500_000, 20_000))
    expect(await recv).toMatchObject({ byteLen: 20_000 })
    expect(Buffer.from(ma.bytes.subarray(500_000, 520_000)).equals(s)).toBe(true)
  })
})


describe.each([
  { path: 'selective repeat', selectiveRepeat: true },
  { path: 'go-back-N', selectiveRepeat: false },
])('16 MiB over an impaired link ($path)', ({ selectiveRepeat }) => {
  it('mixed WRITE/READ/SEND with loss, duplication and reordering ends sha256-identical with one completion per WR', async () => {
    const MiB = 1 << 20
    const TOTAL = 16 * MiB
    const impairment = { loss: 0.01, duplicate: 0.01, reorder: 0.01, seed: 7 }
    pair = await openPair({ impairment: { ...impairment, seed: 11 }, windowBytes: 256 * 1024, selectiveRepeat }, { impairment: { ...impairment, seed: 13 }, windowBytes: 256 * 1024, selectiveRepeat })
    const { qa, qb } = connect(pair, { mtu: 4096, caps: { maxSendWr: 64, maxRecvWr: 512 } })
    const srcA = register(pair.a, TOTAL)
    const dstA = register(pair.a, TOTAL)
    const srcB = register(pair.b, TOTAL)
    const dstB = register(pair.b, TOTAL)
    srcA.bytes.set(pattern(TOTAL, 21))
    srcB.bytes.set(pattern(TOTAL, 22))

    // Ops cover [0, TOTAL) once: WRITE and SEND move srcA -> dstB, READ moves srcB -> dstA.
    const random = seededRandom(5)
    type Op = { kind: 'WRITE' | 'SEND' | 'READ'; off: number; len: number }
    const ops: Op[] = []
    for (let off = 0; off < TOTAL;) {
      const len = Math.min(TOTAL - off, 1024 + Math.floor(random() * 192 * 1024))
      const k = random()
      ops.push({ kind: k < 0.4 ? 'WRITE' : k < 0.7 ? 'READ' : 'SEND', off, len })
      off += len
    }
    const sends = ops.filter((o) => o.kind === 'SEND')
    const completions = new Map<number, number>()
    const recvDone = new Map<number, number>()
    let recvPosted = 0
    const postRecvs = (): void => {
      while (recvPosted < sends.length && recvPosted - recvDone.size < 256) {
        const o = sends[recvPosted]!
        qb.postRecv({ wrId: recvPosted, sgList: [dstB.slice(o.off, o.len)] })
        recvPosted++
      }
    }
    postRecvs()
    let next = 0
    let inFlight = 0
    const post = (): void => {
      while (next < ops.length && inFlight < 48) {
        const o = ops[next]!
        const wrId = next++
        inFlight++
        if (o.kind === 'READ') qa.postSend({ wrId, opcode: 'RDMA_READ', sgList: [dstA.slice(o.off, o.len)], remoteAddr: srcB.region(o.off).addr, rkey: srcB.rkey })
        else if (o.kind === 'WRITE') qa.postSend({ wrId, opcode: 'RDMA_WRITE', sgList: [srcA.slice(o.off, o.len)], remoteAddr: dstB.region(o.off).addr, rkey: dstB.rkey })
        else qa.postSend({ wrId, opcode: 'SEND', sgList: [srcA.slice(o.off, o.len)] })
      }
    }
    post()
    const failures: WorkCompletion[] = []
    const deadline = performance.now() + 40_000
    while (completions.size < ops.length || recvDone.size < sends.length) {
      for (const wc of qa.sendCq.poll(256)) {
        completions.set(wc.wrId, (completions.get(wc.wrId) ?? 0) + 1)
        if (wc.status !== 'SUCCESS') failures.push(wc)
        inFlight--
      }
      for (const wc of qb.recvCq.poll(256)) {
        recvDone.set(wc.wrId, (recvDone.get(wc.wrId) ?? 0) + 1)
        if (wc.status !== 'SUCCESS') failures.push(wc)
      }
      expect(failures).toEqual([])
      post()
      postRecvs()
      if (performance.now() > deadline) throw new Error(`stalled: ${completions.size}/${ops.length} sends, ${recvDone.size}/${sends.length} receives`)
      await Promise.race([qa.sendCq.waitReady(), qb.recvCq.waitReady(), sleep(20)])
    }
    await sleep(50)
    expect(qa.sendCq.poll(100), 'no extra send completions').toEqual([])
    expect(qb.recvCq.poll(100), 'no extra receive completions').toEqual([])
    expect([...completions.values()].every((n) => n === 1), 'exactly one completion per send WR').toBe(true)
    expect([...recvDone.values()].every((n) => n === 1), 'exactly one completion per receive WR').toBe(true)

    const sent = ops.map((o) => (o.kind === 'READ' ? srcB : srcA).bytes.subarray(o.off, o.off + o.len))
    const landed = ops.map((o) => (o.kind === 'READ' ? dstA : dstB).bytes.subarray(o.off, o.off + o.len))
    expect(sha(...landed)).toBe(sha(...sent))
    const imp = pair.da.impairment.stats
    const impB = pair.db.impairment.stats
    expect(imp.lost + impB.lost, 'the link lost packets').toBeGreaterThan(0)
    expect(imp.duplicated + impB.duplicated, 'the link duplicated packets').toBeGreaterThan(0)
    expect(imp.reordered + impB.reordered, 'the link reordered packets').toBeGreaterThan(0)
    expect(pair.da.counters.retransmits, 'the requester retransmitted').toBeGreaterThan(0)
    const sacks = pair.da.counters.sackNaksReceived
    if (selectiveRepeat) {
      expect(sacks, 'gaps were reported with SACK NAKs').toBeGreaterThan(0)
      expect(pair.db.counters.outOfOrderBuffered, 'the responder held packets past gaps').toBeGreaterThan(0)
    } else {
      expect(sacks + pair.db.counters.sackNaksSent + pair.db.counters.outOfOrderBuffered, 'go-back-N: no SACK, nothing held').toBe(0)
    }
    console.log(`[reliability ${selectiveRepeat ? 'SR' : 'GBN'}] lost ${imp.lost}+${impB.lost}, retransmits ${pair.da.counters.retransmits}, retransmitted bytes ${pair.da.counters.retransmittedBytes}, SACKs ${sacks}, held ${pair.db.counters.outOfOrderBuffered}, timeouts ${pair.da.counters.timeouts}`)
  }, 60_000)
})

describe('large READs', () => {
  it('a READ larger than the window is requested in window-sized pieces and lands byte-exact, also over a lossy link', async () => {
    pair = await openPair({ windowBytes: 64 * 1024 }, { windowBytes: 64 * 1024, impairment: { loss: 0.02, seed: 9 } })
    const { qa } = connect(pair, { mtu: 4096 })
    const size = 2 << 20
    const ma = register(pair.a, size)
    const mb = register(pair.b, size)
    const data = pattern(size, 31)
    mb.bytes.set(data)
    await qa.read(ma.slice(0, size), mb.region(0, size))
    expect(Buffer.from(ma.bytes).equals(data)).toBe(true)
    // 512 responses, at most 16 per request: at least 32 READ requests reached the responder.
    expect(pair.db.counters.packetsReceived).toBeGreaterThanOrEqual(32)
    expect(pair.db.impairment.stats.lost).toBeGreaterThan(0)
  })
})
