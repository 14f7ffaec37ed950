/** QP state machine, flushing, destroy, queue depths, CQ depth, the async-completion rule and destroy order. */
import { isRdmaError, type QpEvent } from '@rdma-session/core'
import { describe, expect, it } from 'vitest'
import { MockFabric } from '../src/index.js'
import { ALL_ACCESS, completions, connect, endpoint, pair, queuePair, sge, sleep, teardown, tick, until } from './harness.js'

const code = (fn: () => unknown): string | undefined => {
  try {
    fn()
  } catch (err) {
    return isRdmaError(err) ? err.code : String(err)
  }
  return undefined
}

describe('QP state machine', () => {
  it('refuses send WRs in RESET, INIT and RTR, and receive WRs in RESET, with ERR_QP_STATE', async () => {
    const fabric = new MockFabric()
    const a = await endpoint(fabric)
    const b = await endpoint(fabric)
    const wr = { wrId: 1, opcode: 'SEND' as const, sgList: [sge(a, 0, 8)], signaled: true }
    expect(code(() => a.qp.postSend(wr))).toBe('ERR_QP_STATE')
    expect(code(() => a.qp.postRecv({ wrId: 1, sgList: [] }))).toBe('ERR_QP_STATE')
    a.qp.modify({ state: 'INIT', accessFlags: ALL_ACCESS, portNum: 1, pkeyIndex: 0 })
    expect(code(() => a.qp.postSend(wr))).toBe('ERR_QP_STATE')
    a.qp.postRecv({ wrId: 1, sgList: [sge(a, 0, 8)] }) // receives wait in INIT
    a.qp.modify({ state: 'RTR', remote: { address: b.device.info.address, port: b.device.info.port }, pathMtu: 1024, destQpn: b.qp.qpn, rqPsn: 0 })
    expect(code(() => a.qp.postSend(wr))).toBe('ERR_QP_STATE')
    expect(a.qp.snapshot()).toMatchObject({ state: 'RTR', postedRecvs: 1, expectedPsn: 0 })
  })

  it('checks transitions and attributes with core’s rules', async () => {
    const fabric = new MockFabric()
    const a = await endpoint(fabric)
    expect(code(() => a.qp.modify({ state: 'RTS', sqPsn: 0 }))).toBe('ERR_QP_STATE')
    expect(code(() => a.qp.modify({ state: 'INIT' }))).toBe('ERR_QP_ATTR')
    expect(code(() => a.qp.modify({ state: 'INIT', accessFlags: 15, sqPsn: 1 }))).toBe('ERR_QP_ATTR')
    expect(a.qp.state).toBe('RESET')
  })

  it('query() reports the attributes applied so far', async () => {
    const { a, b } = await pair({ encryption: true, mtu: 2048, timeout: 9 })
    expect(a.qp.query()).toMatchObject({
      state: 'RTS',
      qpn: a.qp.qpn,
      encrypted: true,
      pathMtu: 2048,
      destQpn: b.qp.qpn,
      remote: { address: b.device.info.address, port: 4791 },
      sqPsn: a.psn,
      rqPsn: b.psn,
      timeout: 9,
      accessFlags: ALL_ACCESS,
    })
    expect('encryption' in a.qp.query()).toBe(false)
  })

  it('RTS -> SQD holds new WRs until SQD -> RTS', async () => {
    const { a, b } = await pair()
    a.qp.modify({ state: 'SQD' })
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    await sleep(10)
    expect(a.cq.poll(1)).toEqual([])
    a.qp.modify({ state: 'RTS' })
    expect((await completions(a.cq, 1))[0]).toMatchObject({ wrId: 1, status: 'SUCCESS' })
  })

  it('RESET forgets the connection; the QP can be connected again', async () => {
    const { fabric, a, b } = await pair()
    a.qp.modify({ state: 'RESET' })
    b.qp.modify({ state: 'RESET' })
    expect(a.qp.query()).toEqual({ state: 'RESET', qpn: a.qp.qpn, encrypted: false })
    connect(a, b)
    a.buf[0] = 42
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 1)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    expect((await completions(a.cq, 1))[0]).toMatchObject({ status: 'SUCCESS' })
    expect(b.buf[0]).toBe(42)
    expect(fabric.stats.dropped.wrongState).toBe(0)
  })
})

describe('RESET', () => {
  it('drops queued WRs without completions: after reconnecting, nothing old is sent', async () => {
    const { fabric, a, b } = await pair()
    a.qp.modify({ state: 'SQD' })
    a.buf.fill(1, 0, 8)
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    a.qp.modify({ state: 'RESET' })
    b.qp.modify({ state: 'RESET' })
    connect(a, b)
    fabric.record()
    a.qp.postSend({ wrId: 2, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr + 8, rkey: b.mr.rkey })
    expect((await completions(a.cq, 1)).map((w) => w.wrId)).toEqual([2])
    await sleep(5)
    expect(a.cq.poll(10)).toEqual([])
    // Only WR 2 went out: every request carries its PSN (a retransmission of it, after a stall longer than the
    // harness's ~1 ms ACK timeout, is WR 2 again; counting requests would take it for an old WR).
    const requests = fabric.recorded.filter((r) => r.kind === 'request')
    expect(requests.length).toBeGreaterThanOrEqual(1)
    expect(new Set(requests.map((r) => r.psn)), 'PSNs of the requests sent after RESET').toEqual(new Set([requests[0]!.psn]))
    expect(b.buf.subarray(0, 8).every((x) => x === 0)).toBe(true)
    expect(b.buf.subarray(8, 16).every((x) => x === 1)).toBe(true)
  })
})

describe('flush on ERR', () => {
  it('modify(ERR) flushes every outstanding WR with WR_FLUSH_ERR in post order, send queue then receive queue, asynchronously', async () => {
    const { a, b } = await pair()
    b.qp.modify({ state: 'SQD' }) // keep b's sends queued
    for (let i = 0; i < 3; i++) b.qp.postRecv({ wrId: 100 + i, sgList: [sge(b, 0, 8)] })
    for (let i = 0; i < 4; i++) b.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(b, 0, 8)], signaled: i % 2 === 0, remoteAddr: a.mr.addr, rkey: a.mr.rkey })
    b.qp.modify({ state: 'ERR' })
    expect(b.cq.poll(100), 'nothing during the modify call').toEqual([])
    const wcs = await completions(b.cq, 7)
    expect(wcs.map((w) => [w.wrId, w.status, w.opcode])).toEqual([
      [0, 'WR_FLUSH_ERR', 'RDMA_WRITE'],
      [1, 'WR_FLUSH_ERR', 'RDMA_WRITE'],
      [2, 'WR_FLUSH_ERR', 'RDMA_WRITE'],
      [3, 'WR_FLUSH_ERR', 'RDMA_WRITE'],
      [100, 'WR_FLUSH_ERR', 'RECV'],
      [101, 'WR_FLUSH_ERR', 'RECV'],
      [102, 'WR_FLUSH_ERR', 'RECV'],
    ])
    b.qp.postSend({ wrId: 7, opcode: 'SEND', sgList: [], signaled: false })
    b.qp.postRecv({ wrId: 8, sgList: [] })
    expect((await completions(b.cq, 2)).map((w) => [w.wrId, w.status])).toEqual([
      [7, 'WR_FLUSH_ERR'],
      [8, 'WR_FLUSH_ERR'],
    ])
    await sleep(5)
    expect(b.cq.poll(10)).toEqual([])
  })

  it('a user modify(ERR) raises no event; an error the provider finds does', async () => {
    const { a, b } = await pair()
    const events: QpEvent[] = []
    a.qp.setEventHandler((e) => events.push(e))
    b.qp.setEventHandler((e) => events.push(e))
    a.qp.modify({ state: 'ERR' })
    await sleep(5)
    expect(events, 'none for a user modify(ERR)').toEqual([])
    // a (in ERR) ignores b's request, so b retries until it gives up.
    b.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(b, 0, 8)], signaled: true, remoteAddr: a.mr.addr, rkey: a.mr.rkey })
    expect((await completions(b.cq, 1))[0]).toMatchObject({ status: 'RETRY_EXC_ERR' })
    await until(() => events.length > 0, () => events) // the fatal event comes in a later macrotask
    expect(events).toEqual([{ type: 'fatal', qpn: b.qp.qpn, reason: expect.stringContaining('retry count exceeded') }])
  })

  it('destroy() drops outstanding WRs without completions and packets to the old QPN are counted as unknownQpn', async () => {
    const { fabric, a, b } = await pair()
    b.qp.postRecv({ wrId: 1, sgList: [sge(b, 0, 8)] })
    const qpn = b.qp.qpn
    b.qp.destroy()
    expect(b.device.qp(qpn)).toBeUndefined()
    expect(code(() => b.qp.postRecv({ wrId: 2, sgList: [] }))).toBe('ERR_QP_STATE')
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [sge(a, 0, 8)], signaled: true })
    await until(() => fabric.stats.dropped.unknownQpn > 0, () => fabric.stats)
    expect(b.cq.poll(10)).toEqual([])
    a.qp.destroy()
  })
})

describe('queue and CQ depths', () => {
  it('throws ERR_QUEUE_FULL when the send or receive queue holds maxSendWr / maxRecvWr WRs', async () => {
    const { a, b } = await pair({ maxSendWr: 4, maxRecvWr: 2 })
    for (let i = 0; i < 4; i++) a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: false, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    expect(code(() => a.qp.postSend({ wrId: 4, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey }))).toBe('ERR_QUEUE_FULL')
    b.qp.postRecv({ wrId: 0, sgList: [] })
    b.qp.postRecv({ wrId: 1, sgList: [] })
    expect(code(() => b.qp.postRecv({ wrId: 2, sgList: [] }))).toBe('ERR_QUEUE_FULL')
    // Once the four unsignaled WRs are acknowledged the queue has room again (a fixed 10 ms could end before that).
    await until(() => a.qp.snapshot().requester!.outstanding === 0, () => a.qp.snapshot().requester)
    a.qp.postSend({ wrId: 5, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    expect((await completions(a.cq, 1))[0]).toMatchObject({ wrId: 5, status: 'SUCCESS' })
  })

  it('CQ overflow: the completion that does not fit is lost and every QP on the CQ goes to ERR with a fatal event', async () => {
    const fabric = new MockFabric()
    const a = await endpoint(fabric, { cqDepth: 2 })
    const b = await endpoint(fabric)
    const second = queuePair(a.device, a.pd)
    const shared = a.pd.createQp({ sendCq: a.cq, recvCq: second.cq, maxSendWr: 8, maxRecvWr: 8, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0, qos: { serviceLevel: 0, trafficClass: 0, className: 'x', weight: 1, rateLimitBps: 0 } })
    connect(a, b)
    const events: QpEvent[] = []
    a.qp.setEventHandler((e) => events.push(e))
    shared.setEventHandler((e) => events.push(e))
    for (let i = 0; i < 3; i++) a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    // Both QPs on the CQ get their fatal event (a fixed 20 ms could end before the third completion).
    await until(() => events.length >= 2, () => ({ events, overflows: a.cq.overflows, states: [a.qp.state, shared.state] }))
    expect(a.cq.overflows).toBeGreaterThan(0)
    expect(a.qp.state).toBe('ERR')
    expect(shared.state).toBe('ERR')
    expect(events.map((e) => [e.qpn, e.reason])).toEqual(
      expect.arrayContaining([
        [a.qp.qpn, 'cq-overflow'],
        [shared.qpn, 'cq-overflow'],
      ]),
    )
    expect(a.cq.poll(10).map((w) => w.wrId)).toEqual([0, 1])
  })
})

describe('completions are asynchronous', () => {
  it('never inside postSend/postRecv/modify: poll() is empty right after posting and notify runs in a later macrotask, once per batch', async () => {
    const { a, b } = await pair()
    let inCall = false
    let notified = 0
    let notifiedInCall = false
    let wake: () => void = () => {}
    a.cq.setNotify(() => {
      notified++
      if (inCall) notifiedInCall = true
      wake()
    })
    inCall = true
    for (let i = 0; i < 50; i++) a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    const sync = a.cq.poll(100)
    await Promise.resolve() // microtasks are not enough either
    const afterMicrotask = a.cq.poll(100)
    inCall = false
    expect(sync).toEqual([])
    expect(afterMicrotask).toEqual([])
    const got = []
    while (got.length < 50) {
      await new Promise<void>((resolve) => (wake = resolve))
      got.push(...a.cq.poll(100))
    }
    expect(got.map((w) => w.wrId)).toEqual([...Array(50).keys()])
    expect(notifiedInCall).toBe(false)
    expect(notified).toBeGreaterThanOrEqual(1)
    expect(notified, 'one notify per batch, not per completion').toBeLessThan(10)
  })

  it('flushes of WRs posted in ERR are asynchronous too', async () => {
    const { a } = await pair()
    a.qp.modify({ state: 'ERR' })
    await sleep(1)
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [], signaled: true })
    expect(a.cq.poll(10)).toEqual([])
    await tick()
    expect(a.cq.poll(10)).toMatchObject([{ wrId: 1, status: 'WR_FLUSH_ERR' }])
  })
})

describe('destroy order', () => {
  it('children first: the PD, CQ and device refuse to go while they have live children (ERR_QP_STATE)', async () => {
    const fabric = new MockFabric()
    const a = await endpoint(fabric)
    expect(code(() => a.cq.destroy())).toBe('ERR_QP_STATE')
    expect(code(() => a.pd.dealloc())).toBe('ERR_QP_STATE')
    await expect(a.device.close()).rejects.toMatchObject({ code: 'ERR_QP_STATE' })
    expect(fabric.device(a.device.info.address)).toBe(a.device)
    await teardown(a)
    expect(fabric.device(a.device.info.address)).toBeUndefined()
    expect(code(() => a.device.allocPd())).toBe('ERR_CLOSED')
  })
})

describe('identifiers', () => {
  it('QPNs are random 24-bit numbers, unique per host, never 0 or 1; keys are random and addresses 4 KiB aligned', async () => {
    const fabric = new MockFabric()
    const a = await endpoint(fabric)
    const qpns = new Set<number>()
    for (let i = 0; i < 300; i++) {
      const q = queuePair(a.device, a.pd)
      expect(q.qp.qpn).toBeGreaterThan(1)
      expect(q.qp.qpn).toBeLessThan(0x1000000)
      qpns.add(q.qp.qpn)
    }
    expect(qpns.size).toBe(300)
    const sorted = [...qpns].sort((x, y) => x - y)
    expect(sorted.some((q, i) => i > 0 && q !== sorted[i - 1]! + 1)).toBe(true)
    const mrs = Array.from({ length: 50 }, () => a.pd.registerMemory(new Uint8Array(100), 15))
    expect(new Set(mrs.map((m) => m.rkey)).size).toBe(50)
    expect(mrs.every((m) => m.lkey !== m.rkey && m.addr % 4096 === 0 && m.length === 100)).toBe(true)
    const steps = new Set(mrs.slice(1).map((m, i) => m.rkey - mrs[i]!.rkey))
    expect(steps.size, 'rkeys do not follow a fixed stride').toBeGreaterThan(40)
  })
})
