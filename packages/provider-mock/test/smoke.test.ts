import { describe, expect, it } from 'vitest'
import { completions, pair, sge } from './harness.js'

describe('smoke', () => {
  it('writes', async () => {
    const { a, b } = await pair()
    a.buf.set([1, 2, 3, 4], 0)
    a.qp.postSend({ wrId: 7, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 4)], signaled: true, remoteAddr: b.mr.addr + 100, rkey: b.mr.rkey })
    const [wc] = await completions(a.cq, 1)
    expect(wc).toEqual({ wrId: 7, status: 'SUCCESS', opcode: 'RDMA_WRITE', byteLen: 4, qpn: a.qp.qpn })
    expect([...b.buf.subarray(100, 104)]).toEqual([1, 2, 3, 4])
  })
})
