/** Remote and local protection: violations complete with the verbs status and touch no memory. */
import { AccessFlag, type QpEvent } from '@rdma-session/core'
import { describe, expect, it } from 'vitest'
import { SLOW_ACK_TIMEOUT, completions, pair, sge, sleep, until, type Pair } from './harness.js'

const LOCAL_WRITE = AccessFlag.LOCAL_WRITE

async function expectRemoteAccessError(p: Pair, post: () => void, status = 'REM_ACCESS_ERR'): Promise<void> {
  const { a, b } = p
  const before = Buffer.from(b.buf)
  const events: QpEvent[] = []
  a.qp.setEventHandler((e) => events.push(e))
  post()
  a.qp.postSend({ wrId: 99, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
  const wcs = await completions(a.cq, 2)
  expect(wcs.map((w) => [w.wrId, w.status])).toEqual([
    [1, status],
    [99, 'WR_FLUSH_ERR'],
  ])
  expect(Buffer.compare(b.buf, before), 'target memory untouched').toBe(0)
  expect(a.qp.state).toBe('ERR')
  await until(() => events.length > 0, () => events) // the fatal event comes in a later macrotask
  expect(events).toEqual([expect.objectContaining({ type: 'fatal', qpn: a.qp.qpn })])
}

describe('remote access violations', () => {
  it('a bad rkey completes with REM_ACCESS_ERR (vendorErr = the NAK syndrome), moves the requester to ERR and writes nothing', async () => {
    const p = await pair()
    p.a.buf.fill(0x55)
    await expectRemoteAccessError(p, () =>
      p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 64)], signaled: true, remoteAddr: p.b.mr.addr, rkey: (p.b.mr.rkey + 1) >>> 0 }),
    )
  })

  it('a range one byte past the end of the region is refused as a whole', async () => {
    const p = await pair({ mrBytes: 4096 })
    p.a.buf.fill(0x55)
    await expectRemoteAccessError(p, () =>
      p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 100)], signaled: true, remoteAddr: p.b.mr.addr + 3997, rkey: p.b.mr.rkey }),
    )
  })

  it('an address below the region start is refused', async () => {
    const p = await pair()
    await expectRemoteAccessError(p, () => p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 8)], signaled: true, remoteAddr: p.b.mr.addr - 8, rkey: p.b.mr.rkey }))
  })

  it('WRITE to a region without remote-write is refused', async () => {
    const p = await pair({ mrAccess: LOCAL_WRITE | AccessFlag.REMOTE_READ })
    p.a.buf.fill(1)
    await expectRemoteAccessError(p, () => p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 8)], signaled: true, remoteAddr: p.b.mr.addr, rkey: p.b.mr.rkey }))
  })

  it('READ from a region without remote-read is refused and the local buffer stays untouched', async () => {
    const p = await pair({ mrAccess: LOCAL_WRITE | AccessFlag.REMOTE_WRITE })
    p.b.buf.fill(7)
    p.a.buf.fill(9)
    await expectRemoteAccessError(p, () => p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_READ', sgList: [sge(p.a, 0, 64)], signaled: true, remoteAddr: p.b.mr.addr, rkey: p.b.mr.rkey }))
    expect(p.a.buf.every((x) => x === 9)).toBe(true)
  })

  it('an atomic on a region without remote-atomic is refused and the target word keeps its value', async () => {
    const p = await pair({ mrAccess: LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ })
    p.b.buf.fill(3, 0, 8)
    await expectRemoteAccessError(p, () =>
      p.a.qp.postSend({ wrId: 1, opcode: 'ATOMIC_FETCH_AND_ADD', sgList: [sge(p.a, 0, 8)], signaled: true, remoteAddr: p.b.mr.addr, rkey: p.b.mr.rkey, compareAdd: 1n }),
    )
  })

  it('an rkey from another PD on the same host is refused', async () => {
    const p = await pair()
    const otherPd = p.b.device.allocPd()
    const foreign = new Uint8Array(64).fill(0x66)
    const mr = otherPd.registerMemory(foreign, 15)
    await expectRemoteAccessError(p, () => p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 8)], signaled: true, remoteAddr: mr.addr, rkey: mr.rkey }))
    expect(foreign.every((x) => x === 0x66)).toBe(true)
  })

  it('the rkey of a deregistered region is refused', async () => {
    const p = await pair()
    const buf = new Uint8Array(64).fill(0x12)
    const mr = p.b.pd.registerMemory(buf, 15)
    const { addr, rkey } = mr
    mr.deregister()
    await expectRemoteAccessError(p, () => p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 8)], signaled: true, remoteAddr: addr, rkey }))
    expect(buf.every((x) => x === 0x12)).toBe(true)
  })

  it('a misaligned atomic is an invalid request (REM_INV_REQ_ERR)', async () => {
    const p = await pair()
    await expectRemoteAccessError(
      p,
      () => p.a.qp.postSend({ wrId: 1, opcode: 'ATOMIC_CMP_AND_SWP', sgList: [sge(p.a, 0, 8)], signaled: true, remoteAddr: p.b.mr.addr + 4, rkey: p.b.mr.rkey, compareAdd: 0n, swap: 1n }),
      'REM_INV_REQ_ERR',
    )
  })

  it('a responder QP without remote-write access rejects WRITEs as invalid requests', async () => {
    const p = await pair({ qpAccess: LOCAL_WRITE | AccessFlag.REMOTE_READ })
    await expectRemoteAccessError(p, () => p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 8)], signaled: true, remoteAddr: p.b.mr.addr, rkey: p.b.mr.rkey }), 'REM_INV_REQ_ERR')
  })

  it('the NAK syndrome is reported as vendorErr and the responder QP goes to ERR too', async () => {
    const { a, b } = await pair()
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: 1 })
    const [wc] = await completions(a.cq, 1)
    expect(wc).toMatchObject({ status: 'REM_ACCESS_ERR', vendorErr: 0x62 })
    expect(b.qp.state).toBe('ERR')
  })
})

describe('local protection and length errors', () => {
  it('a bad lkey fails the WR with LOC_PROT_ERR once the WRs before it have completed, and sends nothing for it', async () => {
    const { fabric, a, b } = await pair(SLOW_ACK_TIMEOUT) // counts requests
    fabric.record()
    a.buf.fill(8)
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    a.qp.postSend({ wrId: 2, opcode: 'RDMA_WRITE', sgList: [{ addr: a.mr.addr, length: 8, lkey: a.mr.lkey ^ 1 }], signaled: true, remoteAddr: b.mr.addr + 8, rkey: b.mr.rkey })
    a.qp.postSend({ wrId: 3, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr + 16, rkey: b.mr.rkey })
    expect((await completions(a.cq, 3)).map((w) => [w.wrId, w.status])).toEqual([
      [1, 'SUCCESS'],
      [2, 'LOC_PROT_ERR'],
      [3, 'WR_FLUSH_ERR'],
    ])
    expect(fabric.recorded.filter((r) => r.kind === 'request')).toHaveLength(1)
    expect([...b.buf.subarray(0, 24)]).toEqual([...Array(8).fill(8), ...Array(16).fill(0)])
  })

  it('a local SGE past the end of its region is LOC_PROT_ERR', async () => {
    const { a, b } = await pair({ mrBytes: 4096 })
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [sge(a, 4000, 97)], signaled: true })
    expect((await completions(a.cq, 1))[0]).toMatchObject({ wrId: 1, status: 'LOC_PROT_ERR' })
    expect(b.qp.state).toBe('RTS')
  })

  it('a READ into a local region without local-write is LOC_PROT_ERR and reads nothing', async () => {
    const { a, b } = await pair()
    const ro = new Uint8Array(64).fill(0x77)
    const mr = a.pd.registerMemory(ro, AccessFlag.REMOTE_READ)
    b.buf.fill(1)
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_READ', sgList: [{ addr: mr.addr, length: 64, lkey: mr.lkey }], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    expect((await completions(a.cq, 1))[0]).toMatchObject({ wrId: 1, status: 'LOC_PROT_ERR' })
    expect(ro.every((x) => x === 0x77)).toBe(true)
  })

  it('a receive buffer too small: the sender gets REM_INV_REQ_ERR, the receive completes LOC_LEN_ERR, nothing is written', async () => {
    const { a, b } = await pair()
    b.buf.fill(0x99)
    b.qp.postRecv({ wrId: 5, sgList: [sge(b, 0, 10)] })
    b.qp.postRecv({ wrId: 6, sgList: [sge(b, 100, 10)] })
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [sge(a, 0, 11)], signaled: true })
    expect((await completions(a.cq, 1))[0]).toMatchObject({ wrId: 1, status: 'REM_INV_REQ_ERR' })
    expect((await completions(b.cq, 2)).map((w) => [w.wrId, w.status])).toEqual([
      [5, 'LOC_LEN_ERR'],
      [6, 'WR_FLUSH_ERR'],
    ])
    expect(b.buf.every((x) => x === 0x99)).toBe(true)
  })

  it('a receive SGE without local-write fails the receive with LOC_PROT_ERR and the sender with REM_OP_ERR', async () => {
    const { a, b } = await pair()
    const ro = new Uint8Array(64).fill(0x5a)
    const mr = b.pd.registerMemory(ro, AccessFlag.REMOTE_READ)
    b.qp.postRecv({ wrId: 5, sgList: [{ addr: mr.addr, length: 64, lkey: mr.lkey }] })
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [sge(a, 0, 8)], signaled: true })
    expect((await completions(a.cq, 1))[0]).toMatchObject({ wrId: 1, status: 'REM_OP_ERR' })
    expect((await completions(b.cq, 1))[0]).toMatchObject({ wrId: 5, status: 'LOC_PROT_ERR' })
    expect(ro.every((x) => x === 0x5a)).toBe(true)
  })

  it('an atomic whose local buffer is not 8 bytes is LOC_LEN_ERR', async () => {
    const { a, b } = await pair()
    a.qp.postSend({ wrId: 1, opcode: 'ATOMIC_FETCH_AND_ADD', sgList: [sge(a, 0, 4)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey, compareAdd: 1n })
    expect((await completions(a.cq, 1))[0]).toMatchObject({ wrId: 1, status: 'LOC_LEN_ERR' })
    expect(b.buf.subarray(0, 8).every((x) => x === 0)).toBe(true)
  })

  it('malformed WRs throw at post time like ibv_post_send (EINVAL)', async () => {
    const { a } = await pair()
    expect(() => a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true })).toThrow(/remoteAddr/)
    expect(() => a.qp.postSend({ wrId: 1, opcode: 'ATOMIC_CMP_AND_SWP', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: 0, rkey: 1, compareAdd: 1n })).toThrow(/swap/)
    expect(() => a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: Array(5).fill(sge(a, 0, 1)), signaled: true })).toThrow(/SGEs exceed/)
    expect(() => a.qp.postSend({ wrId: 1, opcode: 'NOPE' as 'SEND', sgList: [], signaled: true })).toThrow(/unknown opcode/)
    expect(() => a.pd.registerMemory(new Uint8Array(8), AccessFlag.REMOTE_WRITE)).toThrow(/local-write/)
    await sleep(5)
    expect(a.cq.poll(10)).toEqual([])
  })
})
