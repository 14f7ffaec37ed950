/** RC reliability under faults: exact data and exactly one completion per WR; retry and RNR limits; dead hosts. */
import type { QpEvent, WorkCompletion } from '@rdma-session/core'
import { describe, expect, it } from 'vitest'
import { completions, pair, settle, sge, sleep, until, type Pair } from './harness.js'

const u64 = (buf: Uint8Array, off: number): bigint => Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).readBigUInt64LE(off)

/**
 * A mixed workload from A to B: WRITEs of distinct bytes to distinct offsets,
 * SENDs into posted receives, READs back, and FETCH_AND_ADDs on one counter.
 */
async function workload(p: Pair, n: number): Promise<{ sends: WorkCompletion[]; recvs: WorkCompletion[] }> {
  const { a, b } = p
  for (let i = 0; i < n; i++) a.buf.fill(i & 0xff, i * 16, i * 16 + 16)
  b.buf.fill(0, 0, 65536)
  let recvs = 0
  const expected: [number, string][] = []
  for (let i = 0; i < n; i++) {
    const kind = i % 4
    if (kind === 0) {
      a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, i * 16, 16)], signaled: true, remoteAddr: b.mr.addr + i * 16, rkey: b.mr.rkey })
      expected.push([i, 'RDMA_WRITE'])
    } else if (kind === 1) {
      b.qp.postRecv({ wrId: 1000 + i, sgList: [sge(b, i * 16, 16)] })
      recvs++
      a.qp.postSend({ wrId: i, opcode: 'SEND', sgList: [sge(a, i * 16, 16)], signaled: true })
      expected.push([i, 'SEND'])
    } else if (kind === 2) {
      a.qp.postSend({ wrId: i, opcode: 'ATOMIC_FETCH_AND_ADD', sgList: [sge(a, 40000 + i * 8, 8)], signaled: true, remoteAddr: b.mr.addr + 60000, rkey: b.mr.rkey, compareAdd: 1n })
      expected.push([i, 'ATOMIC_FETCH_AND_ADD'])
    } else {
      // Unsignaled, except the last WR: its completion tells that everything before it is done.
      const signaled = i === n - 1
      a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, i * 16, 16)], signaled, remoteAddr: b.mr.addr + i * 16, rkey: b.mr.rkey })
      if (signaled) expected.push([i, 'RDMA_WRITE'])
    }
  }
  const sends = await completions(a.cq, expected.length, 8000)
  expect(sends.map((w) => [w.wrId, w.opcode]), 'one completion per signaled WR, in post order').toEqual(expected)
  expect(sends.filter((w) => w.status !== 'SUCCESS')).toEqual([])
  const got = await completions(b.cq, recvs, 8000)
  expect(got.every((w) => w.status === 'SUCCESS' && w.byteLen === 16)).toBe(true)
  for (let i = 0; i < n; i++) {
    if (i % 4 === 2) continue
    expect(b.buf.subarray(i * 16, i * 16 + 16).every((x) => x === (i & 0xff)), `bytes of WR ${i}`).toBe(true)
  }
  const adds = Math.floor((n + 1) / 4)
  expect(u64(b.buf, 60000), 'each FETCH_AND_ADD applied exactly once').toBe(BigInt(adds))
  const originals = Array.from({ length: n }, (_, i) => i)
    .filter((i) => i % 4 === 2)
    .map((i) => u64(a.buf, 40000 + i * 8))
  expect(originals, 'each FETCH_AND_ADD saw the value before it').toEqual(originals.map((_, k) => BigInt(k)))
  expect(await settle(a.cq, 10), 'no extra completions').toEqual([])
  expect(await settle(b.cq, 0)).toEqual([])
  return { sends, recvs: got }
}

describe('faults', () => {
  it('baseline: the workload without faults', async () => {
    const p = await pair({ fabricOptions: { seed: 1 } })
    await workload(p, 200)
    expect(p.fabric.stats.dropped.fault).toBe(0)
  })

  it('one dropped request is retransmitted after the ACK timeout', async () => {
    const p = await pair({ fabricOptions: { seed: 2 } })
    p.fabric.record()
    const rule = p.fabric.faults.drop({ opcode: 'SEND', count: 1 })
    await workload(p, 40)
    expect(rule.hits).toBe(1)
    expect(rule.active).toBe(false)
    expect(p.fabric.stats.dropped.fault).toBe(1)
    const sendPsns = p.fabric.recorded.filter((r) => r.opcode === 'SEND').map((r) => r.psn)
    expect(sendPsns.length).toBeGreaterThan(10) // the dropped one went out again
  })

  it('random loss of 15% of all packets, both directions', async () => {
    const p = await pair({ fabricOptions: { seed: 3 }, retryCnt: 7 })
    p.fabric.faults.drop({ probability: 0.15 })
    await workload(p, 200)
    expect(p.fabric.stats.dropped.fault).toBeGreaterThan(10)
  })

  it('duplicated requests and responses are absorbed (no second receive, no second atomic)', async () => {
    const p = await pair({ fabricOptions: { seed: 4 } })
    p.fabric.faults.duplicate({ probability: 0.5 })
    await workload(p, 200)
    expect(p.fabric.stats.duplicated).toBeGreaterThan(50)
  })

  it('reordered packets: go-back-N after a sequence NAK', async () => {
    const p = await pair({ fabricOptions: { seed: 5 } })
    p.fabric.record()
    p.fabric.faults.reorder({ probability: 0.2, kind: 'request' })
    p.fabric.faults.reorder({ probability: 0.2, kind: 'response' })
    await workload(p, 200)
    expect(p.fabric.stats.reordered).toBeGreaterThan(20)
    expect(p.fabric.recorded.some((r) => r.syndrome === 'PSN_SEQUENCE_ERROR')).toBe(true)
  })

  it('delayed ACKs cause spurious retransmissions that the responder re-acknowledges', async () => {
    const p = await pair({ fabricOptions: { seed: 6 }, timeout: 8 }) // ~1 ms ACK timeout
    p.fabric.faults.delay(5, { kind: 'response', probability: 0.3 })
    await workload(p, 120)
    expect(p.fabric.stats.delayed).toBeGreaterThan(10)
  })

  it('everything at once', async () => {
    const p = await pair({ fabricOptions: { seed: 7 } })
    const f = p.fabric.faults
    f.drop({ probability: 0.05 })
    f.duplicate({ probability: 0.1 })
    f.reorder({ probability: 0.1 })
    f.delay(3, { probability: 0.05 })
    await workload(p, 200)
    // Seed 7 makes the faults repeatable; each kind must have fired, or this is just the baseline again.
    const { dropped, duplicated, reordered, delayed } = p.fabric.stats
    expect({ dropped: dropped.fault > 0, duplicated: duplicated > 0, reordered: reordered > 0, delayed: delayed > 0 }, JSON.stringify({ dropped: dropped.fault, duplicated, reordered, delayed })).toEqual({ dropped: true, duplicated: true, reordered: true, delayed: true })
  })
})

describe('atomic replay', () => {
  it('a duplicated atomic request is answered from the saved result, never executed twice', async () => {
    const { fabric, a, b } = await pair()
    fabric.record()
    Buffer.from(b.buf.buffer).writeBigUInt64LE(100n, 0)
    fabric.faults.duplicate({ opcode: 'ATOMIC_FETCH_AND_ADD', count: 1 })
    a.qp.postSend({ wrId: 1, opcode: 'ATOMIC_FETCH_AND_ADD', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey, compareAdd: 5n })
    expect(await completions(a.cq, 1)).toMatchObject([{ wrId: 1, status: 'SUCCESS' }])
    // The duplicate's answer may still be on its way when the first one completed the WR.
    const atomicAcks = (): unknown[] => fabric.recorded.filter((r) => r.opcode === 'ATOMIC_ACKNOWLEDGE')
    await until(() => atomicAcks().length >= 2, () => ({ atomicAcks: atomicAcks().length, stats: fabric.stats }))
    expect(u64(b.buf, 0)).toBe(105n)
    expect(u64(a.buf, 0)).toBe(100n)
    // Every answer, the duplicate's too, is the original value (a retransmission after a stall longer than the
    // harness's ~1 ms ACK timeout is one more duplicate, answered the same way: at least 2, not exactly 2).
    const acks = fabric.recorded.filter((r) => r.opcode === 'ATOMIC_ACKNOWLEDGE')
    expect(acks.length, 'the duplicate got an answer').toBeGreaterThanOrEqual(2)
    expect(acks.map((r) => Buffer.from(r.payload).readBigUInt64LE(0)), 'the replayed answers').toEqual(acks.map(() => 100n))
  })

  it('a lost atomic response leads to a retransmission that gets the original value back', async () => {
    const { fabric, a, b } = await pair()
    fabric.record()
    Buffer.from(b.buf.buffer).writeBigUInt64LE(7n, 8)
    fabric.faults.drop({ opcode: 'ATOMIC_ACKNOWLEDGE', count: 1 })
    a.qp.postSend({ wrId: 1, opcode: 'ATOMIC_CMP_AND_SWP', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr + 8, rkey: b.mr.rkey, compareAdd: 7n, swap: 9n })
    expect(await completions(a.cq, 1)).toMatchObject([{ wrId: 1, status: 'SUCCESS' }])
    expect(u64(b.buf, 8)).toBe(9n)
    // Re-executing would have compared 9 with 7, failed, and returned 9.
    expect(u64(a.buf, 0)).toBe(7n)
    // Retransmitted at least once (more after a stall past the ~1 ms ACK timeout: each answered from the replay record).
    expect(fabric.recorded.filter((r) => r.opcode === 'ATOMIC_CMP_AND_SWP').length).toBeGreaterThanOrEqual(2)
  })
})

describe('retry limits', () => {
  it('a killed host: in-flight WRs end with RETRY_EXC_ERR, the rest flush, the QP goes to ERR with a fatal event', async () => {
    const { fabric, a, b } = await pair({ retryCnt: 3, timeout: 10 })
    const events: QpEvent[] = []
    a.qp.setEventHandler((e) => events.push(e))
    expect(fabric.killHost(b.device.info.address)).toBe(1)
    for (let i = 0; i < 5; i++) a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: i !== 2, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    const wcs = await completions(a.cq, 5)
    expect(wcs.map((w) => [w.wrId, w.status])).toEqual([
      [0, 'RETRY_EXC_ERR'],
      [1, 'WR_FLUSH_ERR'],
      [2, 'WR_FLUSH_ERR'],
      [3, 'WR_FLUSH_ERR'],
      [4, 'WR_FLUSH_ERR'],
    ])
    expect(a.qp.state).toBe('ERR')
    await until(() => events.length > 0, () => events) // the fatal event comes in a later macrotask
    expect(events).toMatchObject([{ type: 'fatal', qpn: a.qp.qpn }])
    // The first transmission and retryCnt (3) retries, each after an ACK timeout, all went to the dead host.
    expect(fabric.stats.dropped.hostDown).toBeGreaterThanOrEqual(4)
    expect(b.buf.subarray(0, 8).every((x) => x === 0)).toBe(true)
  })

  it('a revived host answers again', async () => {
    const { fabric, a, b } = await pair({ timeout: 10, retryCnt: 7 })
    fabric.killHost(b.device.info.address, b.device.info.port)
    a.buf[0] = 5
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 1)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    await sleep(6)
    fabric.reviveHost(b.device.info.address)
    expect(await completions(a.cq, 1)).toMatchObject([{ status: 'SUCCESS' }])
    expect(b.buf[0]).toBe(5)
  })

  it('a responder that expects another PSN NAKs every attempt until the retry count is spent', async () => {
    const p = await pair({ retryCnt: 2 })
    // Reconnect A's requester with a PSN B does not expect.
    p.a.qp.modify({ state: 'RESET' })
    p.a.qp.modify({ state: 'INIT', accessFlags: 15, portNum: 1, pkeyIndex: 0 })
    p.a.qp.modify({ state: 'RTR', remote: { address: p.b.device.info.address, port: 4791 }, pathMtu: 4096, destQpn: p.b.qp.qpn, rqPsn: p.b.psn })
    p.a.qp.modify({ state: 'RTS', sqPsn: (p.a.psn + 1000) & 0xffffff, retryCnt: 2, timeout: 8 })
    p.fabric.record()
    p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 8)], signaled: true, remoteAddr: p.b.mr.addr, rkey: p.b.mr.rkey })
    expect(await completions(p.a.cq, 1)).toMatchObject([{ status: 'RETRY_EXC_ERR' }])
    expect(p.fabric.recorded.filter((r) => r.syndrome === 'PSN_SEQUENCE_ERROR').length).toBeGreaterThanOrEqual(1)
  })

  it('SEND with no receive posted: RNR NAKs until rnrRetry is spent, then RNR_RETRY_EXC_ERR', async () => {
    const { fabric, a, b } = await pair({ rnrRetry: 2 })
    fabric.record()
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [sge(a, 0, 8)], signaled: true })
    a.qp.postSend({ wrId: 2, opcode: 'SEND', sgList: [sge(a, 0, 8)], signaled: true })
    expect((await completions(a.cq, 2)).map((w) => [w.wrId, w.status, w.vendorErr])).toEqual([
      [1, 'RNR_RETRY_EXC_ERR', 0x20],
      [2, 'WR_FLUSH_ERR', undefined],
    ])
    expect(fabric.recorded.filter((r) => r.syndrome === 'RNR')).toHaveLength(3) // first try + 2 retries
    expect(b.qp.state).toBe('RTS')
  })

  it('rnrRetry 7 retries forever: a receive posted later still gets the SEND', async () => {
    const { fabric, a, b } = await pair({ rnrRetry: 7, minRnrTimer: 1 })
    fabric.record()
    a.buf.fill(3, 0, 8)
    a.qp.postSend({ wrId: 1, opcode: 'SEND_WITH_IMM', sgList: [sge(a, 0, 8)], signaled: true, imm: 1 })
    // More RNR NAKs than a retry count of 7 would allow (a fixed 30 ms saw one or two on a stalled host).
    const rnrNaks = (): number => fabric.recorded.filter((r) => r.syndrome === 'RNR').length
    await until(() => rnrNaks() > 8, () => ({ rnrNaks: rnrNaks(), completions: a.cq.poll(1) }))
    expect(a.cq.poll(1)).toEqual([])
    b.qp.postRecv({ wrId: 9, sgList: [sge(b, 0, 8)] })
    expect(await completions(a.cq, 1)).toMatchObject([{ status: 'SUCCESS' }])
    expect(await completions(b.cq, 1)).toMatchObject([{ wrId: 9, status: 'SUCCESS', imm: 1 }])
  })

  it('WRs pipelined behind an RNR-NAKed SEND wait with it and do not use up the transport retries', async () => {
    const { fabric, a, b } = await pair({ rnrRetry: 7, retryCnt: 1, minRnrTimer: 1 })
    fabric.record()
    a.buf.fill(6, 0, 64)
    a.qp.postSend({ wrId: 0, opcode: 'SEND', sgList: [sge(a, 0, 8)], signaled: true })
    for (let i = 1; i <= 10; i++) a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 4)], signaled: true, remoteAddr: b.mr.addr + 100 + i * 4, rkey: b.mr.rkey })
    // Several RNR rounds (each one a retransmission of the pipelined WRITEs too), more than retryCnt 1 would survive.
    // A fixed 40 ms sleep saw a single RNR NAK on a stalled host.
    const rnrNaks = (): number => fabric.recorded.filter((r) => r.syndrome === 'RNR').length
    await until(() => rnrNaks() > 3, () => ({ rnrNaks: rnrNaks(), completions: a.cq.poll(11) }))
    expect(a.cq.poll(1)).toEqual([])
    b.qp.postRecv({ wrId: 9, sgList: [sge(b, 0, 8)] })
    expect((await completions(a.cq, 11)).map((w) => w.status)).toEqual(Array(11).fill('SUCCESS'))
    expect(b.buf.subarray(104, 144).every((x) => x === 6)).toBe(true)
    expect(fabric.recorded.filter((r) => r.syndrome === 'RNR').length).toBeGreaterThan(3)
  })

  it('RDMA_WRITE_WITH_IMM also waits for a receive (RNR) and writes nothing until it has one', async () => {
    const { a, b } = await pair({ rnrRetry: 1 })
    a.buf.fill(4, 0, 8)
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE_WITH_IMM', sgList: [sge(a, 0, 8)], signaled: true, imm: 2, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    expect(await completions(a.cq, 1)).toMatchObject([{ status: 'RNR_RETRY_EXC_ERR' }])
    expect(b.buf.subarray(0, 8).every((x) => x === 0)).toBe(true)
  })

  it('packets for an unknown host are counted and the requester gives up', async () => {
    const { fabric, a, b } = await pair({ retryCnt: 1 })
    a.qp.modify({ state: 'RESET' })
    a.qp.modify({ state: 'INIT', accessFlags: 15 })
    a.qp.modify({ state: 'RTR', remote: { address: '10.9.9.9', port: 4791 }, pathMtu: 1024, destQpn: b.qp.qpn, rqPsn: 0 })
    a.qp.modify({ state: 'RTS', sqPsn: 0, timeout: 8, retryCnt: 1 })
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [], signaled: true })
    expect(await completions(a.cq, 1)).toMatchObject([{ status: 'RETRY_EXC_ERR' }])
    expect(fabric.stats.dropped.unknownHost).toBe(2)
  })
})
