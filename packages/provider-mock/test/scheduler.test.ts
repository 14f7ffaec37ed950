/** Egress QoS: weighted sharing of a host link, latency isolation from bulk traffic, and per-QP rate limits. */
import type { QpQos } from '@rdma-session/core'
import { describe, expect, it } from 'vitest'
import { MockFabric } from '../src/index.js'
import { completions, connect, endpoint, queuePair, sge, sleep, type Endpoint, type PairOptions } from './harness.js'

type Qp = ReturnType<typeof queuePair>

/** A QP on host A connected to a QP on host B (both hosts shared by all pairs). */
function qpPair(a: Endpoint, b: Endpoint, qos: Partial<QpQos>, o: PairOptions = {}): { x: Qp; y: Qp } {
  const x = queuePair(a.device, a.pd, { ...o, qos })
  const y = queuePair(b.device, b.pd, o)
  connect(x, y, o)
  return { x, y }
}

/** Keeps `depth` writes of `size` bytes in flight on `qp` until stopped; counts completed bytes. */
function saturate(q: Qp, a: Endpoint, b: Endpoint, size: number, depth: number): { bytes: () => number; stop: () => void } {
  let bytes = 0
  let stopped = false
  let id = 0
  const post = (): void => q.qp.postSend({ wrId: id++, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, size)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
  for (let i = 0; i < depth; i++) post()
  q.cq.setNotify(() => {
    for (const wc of q.cq.poll(depth)) {
      if (stopped) continue
      if (wc.status !== 'SUCCESS') throw new Error(`write failed: ${wc.status}`)
      bytes += wc.byteLen
      if (!stopped) post()
    }
  })
  return {
    bytes: () => bytes,
    stop: () => {
      stopped = true
      q.qp.modify({ state: 'ERR' })
    },
  }
}

async function hosts(linkBytesPerSecond: number): Promise<{ fabric: MockFabric; a: Endpoint; b: Endpoint }> {
  const fabric = new MockFabric({ linkBytesPerSecond })
  const a = await endpoint(fabric, { mrBytes: 1 << 20 })
  const b = await endpoint(fabric, { mrBytes: 1 << 20 })
  return { fabric, a, b }
}

describe('egress scheduler', () => {
  it('two saturating QPs share a host link by weight (10:1)', async () => {
    const { a, b } = await hosts(40e6)
    const heavy = qpPair(a, b, { weight: 10, className: 'heavy' })
    const light = qpPair(a, b, { weight: 1, className: 'light' })
    const h = saturate(heavy.x, a, b, 4096, 256)
    const l = saturate(light.x, a, b, 4096, 256)
    await sleep(60) // warm up: both queues are full and the link is saturated
    const h0 = h.bytes()
    const l0 = l.bytes()
    const t0 = performance.now()
    await sleep(300)
    // The window as it really was: a loaded host wakes up late, and dividing by the 300 ms asked for overstated the rate.
    const windowMs = performance.now() - t0
    const hb = h.bytes() - h0
    const lb = l.bytes() - l0
    h.stop()
    l.stop()
    const ratio = hb / lb
    const rate = ((hb + lb) / (windowMs / 1000)) * ((4096 + 64) / 4096)
    const shown = `heavy ${hb} B, light ${lb} B in ${windowMs.toFixed(0)} ms`
    expect(lb, `${shown}: enough light writes for the ratio to mean something`).toBeGreaterThanOrEqual(8 * 4096)
    expect(ratio, shown).toBeGreaterThan(7.5)
    expect(ratio, shown).toBeLessThan(13)
    // Never above the link rate. (A starved event loop leaves it below: that is the host, not the scheduler, so there is no lower bound.)
    expect(rate, `${shown}: the link rate holds`).toBeLessThan(46e6)
  })

  it('equal weights share equally', async () => {
    const { a, b } = await hosts(40e6)
    const one = saturate(qpPair(a, b, { weight: 3 }).x, a, b, 4096, 128)
    const two = saturate(qpPair(a, b, { weight: 3 }).x, a, b, 1024, 512)
    await sleep(200)
    one.stop()
    two.stop()
    const ratio = one.bytes() / two.bytes()
    expect(ratio).toBeGreaterThan(0.75)
    expect(ratio).toBeLessThan(1.33)
  })

  it('a latency QP’s small ops complete quickly while a bulk QP on the same host floods the link', async () => {
    const { fabric, a, b } = await hosts(20e6)
    const bulk = qpPair(a, b, { weight: 1, className: 'bulk' }, { maxSendWr: 256 })
    const latency = qpPair(a, b, { weight: 1, className: 'latency' })
    // ~6.5 MB of 64 KiB writes: about 330 ms of backlog at 20 MB/s.
    for (let i = 0; i < 100; i++) bulk.x.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 65536)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    const bulkProbeAt = performance.now()
    bulk.x.qp.postSend({ wrId: 1000, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    await sleep(20)
    // What matters is how much of the bulk backlog goes on the link ahead of each small op, not wall time (a loaded
    // host stalls the event loop for tens of ms, with or without a scheduler). A FIFO link puts all 6.5 MB ahead of
    // the first one; deficit round robin lets at most one bulk segment go first, so at most one 64 KiB message
    // (sent with its last segment) reaches the fabric between the post and the small write's request.
    fabric.record()
    const aheadKiB: number[] = []
    for (let i = 0; i < 20; i++) {
      const from = fabric.recorded.length
      latency.x.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr + 8, rkey: b.mr.rkey })
      expect(await completions(latency.x.cq, 1)).toMatchObject([{ status: 'SUCCESS' }])
      const sent = fabric.recorded.slice(from)
      const at = sent.findIndex((p) => p.kind === 'request' && p.srcQpn === latency.x.qp.qpn)
      aheadKiB.push(sent.slice(0, at).filter((p) => p.kind === 'request' && p.srcQpn === bulk.x.qp.qpn).reduce((n, p) => n + p.length, 0) / 1024)
    }
    fabric.record(false)
    const bulkDone = bulk.x.cq.poll(1000).length
    expect(bulkDone, 'the bulk QP is still busy').toBeLessThan(60)
    expect(Math.max(...aheadKiB), `bulk KiB put on the link ahead of each small op: ${aheadKiB.join(' ')}`).toBeLessThanOrEqual(64)
    // The same 8-byte write behind the bulk backlog waits for all of it.
    const probe = (await completions(bulk.x.cq, 101 - bulkDone, 3000)).at(-1)!
    expect(probe.wrId).toBe(1000)
    expect(performance.now() - bulkProbeAt).toBeGreaterThan(200)
    bulk.x.qp.destroy()
  })

  it('a rate-limited QP sends at its rate while an unlimited QP on the same host is not slowed down', async () => {
    const { a, b } = await hosts(Infinity)
    const limited = qpPair(a, b, { rateLimitBps: 2e6 })
    const free = qpPair(a, b, {})
    const t0 = performance.now()
    for (let i = 0; i < 100; i++) limited.x.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 4096)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    for (let i = 0; i < 100; i++) free.x.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 4096)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    await completions(free.x.cq, 100)
    // Not slowed down: the free QP finished while the limited one had sent little more than its burst allowance
    // (ordering, not wall time: a stalled loop slows both, and the limited bucket banks at most 5 ms of stall).
    const limitedWhenFreeDone = limited.x.cq.poll(100)
    expect(limitedWhenFreeDone.length, 'limited writes done when the free QP finished').toBeLessThan(25)
    await completions(limited.x.cq, 100 - limitedWhenFreeDone.length)
    const limitedMs = performance.now() - t0
    // 100 x 4160 wire bytes at 2 MB/s = 208 ms, less the initial burst allowance. Never faster; a starved loop
    // loses the tokens of every stall longer than 5 ms, so slower only within a wide margin.
    expect(limitedMs).toBeGreaterThan(150)
    expect(limitedMs, 'the limited QP did not stall').toBeLessThan(1200)
  })
})
