/** Every opcode through the SPI, checked byte for byte. */
import { afterEach, describe, expect, it } from 'vitest'
import { completions, pair, sge, type Pair } from './harness.js'

const u64 = (buf: Uint8Array, off: number): bigint => Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).readBigUInt64LE(off)
const setU64 = (buf: Uint8Array, off: number, v: bigint): void => void Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).writeBigUInt64LE(v, off)
const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff)

let p: Pair
afterEach(() => {
  p?.a.qp.destroy()
  p?.b.qp.destroy()
})

describe('operations', () => {
  it('RDMA_WRITE gathers a three-SGE list into the target range and touches nothing around it', async () => {
    p = await pair()
    const { a, b } = p
    a.buf.set(pattern(100, 1), 0)
    a.buf.set(pattern(50, 2), 1000)
    a.buf.set(pattern(7, 3), 5000)
    b.buf.fill(0xee)
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 100), sge(a, 1000, 50), sge(a, 5000, 7)], signaled: true, remoteAddr: b.mr.addr + 300, rkey: b.mr.rkey })
    const [wc] = await completions(a.cq, 1)
    expect(wc).toEqual({ wrId: 1, status: 'SUCCESS', opcode: 'RDMA_WRITE', byteLen: 157, qpn: a.qp.qpn })
    expect(b.buf.subarray(300, 457)).toEqual(Uint8Array.from([...pattern(100, 1), ...pattern(50, 2), ...pattern(7, 3)]))
    expect(b.buf[299]).toBe(0xee)
    expect(b.buf[457]).toBe(0xee)
  })

  it('RDMA_WRITE_WITH_IMM writes, consumes a receive WR and completes it as RECV_RDMA_WITH_IMM with the immediate', async () => {
    p = await pair()
    const { a, b } = p
    a.buf.set(pattern(64, 9), 0)
    b.buf.fill(0x11, 8192, 8192 + 64)
    b.qp.postRecv({ wrId: 77, sgList: [sge(b, 8192, 64)] })
    a.qp.postSend({ wrId: 2, opcode: 'RDMA_WRITE_WITH_IMM', sgList: [sge(a, 0, 64)], signaled: true, imm: 0xdeadbeef, remoteAddr: b.mr.addr + 128, rkey: b.mr.rkey })
    const [sent] = await completions(a.cq, 1)
    const [recv] = await completions(b.cq, 1)
    expect(sent).toMatchObject({ wrId: 2, status: 'SUCCESS', opcode: 'RDMA_WRITE_WITH_IMM' })
    expect(recv).toEqual({ wrId: 77, status: 'SUCCESS', opcode: 'RECV_RDMA_WITH_IMM', byteLen: 64, qpn: b.qp.qpn, imm: 0xdeadbeef })
    expect(b.buf.subarray(128, 192)).toEqual(pattern(64, 9))
    expect(b.buf.subarray(8192, 8256).every((x) => x === 0x11)).toBe(true)
  })

  it('SEND scatters into the receive SGE list; SEND_WITH_IMM carries the immediate to the RECV completion', async () => {
    p = await pair()
    const { a, b } = p
    a.buf.set(pattern(300, 4), 0)
    b.buf.fill(0x22)
    b.qp.postRecv({ wrId: 10, sgList: [sge(b, 0, 100), sge(b, 4096, 500)] })
    b.qp.postRecv({ wrId: 11, sgList: [sge(b, 10000, 16)] })
    a.qp.postSend({ wrId: 3, opcode: 'SEND', sgList: [sge(a, 0, 300)], signaled: true })
    a.qp.postSend({ wrId: 4, opcode: 'SEND_WITH_IMM', sgList: [sge(a, 0, 16)], signaled: true, imm: 42 })
    expect((await completions(a.cq, 2)).map((w) => [w.wrId, w.status, w.opcode])).toEqual([
      [3, 'SUCCESS', 'SEND'],
      [4, 'SUCCESS', 'SEND_WITH_IMM'],
    ])
    const recvs = await completions(b.cq, 2)
    expect(recvs[0]).toEqual({ wrId: 10, status: 'SUCCESS', opcode: 'RECV', byteLen: 300, qpn: b.qp.qpn })
    expect(recvs[1]).toEqual({ wrId: 11, status: 'SUCCESS', opcode: 'RECV', byteLen: 16, qpn: b.qp.qpn, imm: 42 })
    const src = pattern(300, 4)
    expect(b.buf.subarray(0, 100)).toEqual(src.subarray(0, 100))
    expect(b.buf.subarray(4096, 4296)).toEqual(src.subarray(100, 300))
    expect(b.buf[4296]).toBe(0x22)
    expect(b.buf.subarray(10000, 10016)).toEqual(src.subarray(0, 16))
  })

  it('RDMA_READ copies remote bytes into a scattered local SGE list', async () => {
    p = await pair()
    const { a, b } = p
    b.buf.set(pattern(6000, 5), 1000)
    a.buf.fill(0x33)
    a.qp.postSend({ wrId: 5, opcode: 'RDMA_READ', sgList: [sge(a, 0, 2000), sge(a, 20000, 4000)], signaled: true, remoteAddr: b.mr.addr + 1000, rkey: b.mr.rkey })
    const [wc] = await completions(a.cq, 1)
    expect(wc).toEqual({ wrId: 5, status: 'SUCCESS', opcode: 'RDMA_READ', byteLen: 6000, qpn: a.qp.qpn })
    const src = pattern(6000, 5)
    expect(a.buf.subarray(0, 2000)).toEqual(src.subarray(0, 2000))
    expect(a.buf.subarray(20000, 24000)).toEqual(src.subarray(2000))
    expect(a.buf[2000]).toBe(0x33)
    expect(a.buf[24000]).toBe(0x33)
  })

  it('ATOMIC_CMP_AND_SWP swaps only on a match and always returns the original (little-endian)', async () => {
    p = await pair()
    const { a, b } = p
    setU64(b.buf, 64, 0x1122334455667788n)
    a.qp.postSend({ wrId: 6, opcode: 'ATOMIC_CMP_AND_SWP', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr + 64, rkey: b.mr.rkey, compareAdd: 0x1122334455667788n, swap: 0xaabbn })
    a.qp.postSend({ wrId: 7, opcode: 'ATOMIC_CMP_AND_SWP', sgList: [sge(a, 8, 8)], signaled: true, remoteAddr: b.mr.addr + 64, rkey: b.mr.rkey, compareAdd: 0x1122334455667788n, swap: 0xccddn })
    const wcs = await completions(a.cq, 2)
    expect(wcs.map((w) => [w.wrId, w.status, w.opcode, w.byteLen])).toEqual([
      [6, 'SUCCESS', 'ATOMIC_CMP_AND_SWP', 8],
      [7, 'SUCCESS', 'ATOMIC_CMP_AND_SWP', 8],
    ])
    expect(u64(a.buf, 0)).toBe(0x1122334455667788n)
    expect(u64(a.buf, 8)).toBe(0xaabbn)
    expect(u64(b.buf, 64)).toBe(0xaabbn)
    expect(b.buf[64]).toBe(0xbb) // little-endian in the target's memory
  })

  it('ATOMIC_FETCH_AND_ADD adds modulo 2^64 and returns the original', async () => {
    p = await pair()
    const { a, b } = p
    setU64(b.buf, 800, 0xfffffffffffffffen)
    a.qp.postSend({ wrId: 8, opcode: 'ATOMIC_FETCH_AND_ADD', sgList: [sge(a, 100 * 8, 8)], signaled: true, remoteAddr: b.mr.addr + 800, rkey: b.mr.rkey, compareAdd: 3n })
    a.qp.postSend({ wrId: 9, opcode: 'ATOMIC_FETCH_AND_ADD', sgList: [sge(a, 101 * 8, 8)], signaled: true, remoteAddr: b.mr.addr + 800, rkey: b.mr.rkey, compareAdd: -1n })
    await completions(a.cq, 2)
    expect(u64(a.buf, 800)).toBe(0xfffffffffffffffen)
    expect(u64(a.buf, 808)).toBe(1n)
    expect(u64(b.buf, 800)).toBe(0n)
  })

  it('inline data is copied at post time: changing the source afterwards does not change what arrives', async () => {
    p = await pair({ maxInlineData: 128 })
    const { a, b } = p
    const data = pattern(100, 6)
    b.qp.postRecv({ wrId: 1, sgList: [sge(b, 0, 128)] })
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [], inlineData: data, signaled: true })
    a.qp.postSend({ wrId: 2, opcode: 'RDMA_WRITE', sgList: [], inlineData: data, signaled: true, remoteAddr: b.mr.addr + 1000, rkey: b.mr.rkey })
    data.fill(0)
    await completions(a.cq, 2)
    expect((await completions(b.cq, 1))[0]).toMatchObject({ status: 'SUCCESS', byteLen: 100 })
    expect(b.buf.subarray(0, 100)).toEqual(pattern(100, 6))
    expect(b.buf.subarray(1000, 1100)).toEqual(pattern(100, 6))
    expect(() => a.qp.postSend({ wrId: 3, opcode: 'SEND', sgList: [], inlineData: new Uint8Array(129), signaled: true })).toThrow(/maxInlineData/)
  })

  it('zero-length WRITE and SEND complete without touching memory', async () => {
    p = await pair()
    const { a, b } = p
    b.buf.fill(0x44)
    b.qp.postRecv({ wrId: 1, sgList: [] })
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [], signaled: true, remoteAddr: 0, rkey: 0 })
    a.qp.postSend({ wrId: 2, opcode: 'SEND', sgList: [], signaled: true })
    expect((await completions(a.cq, 2)).map((w) => w.status)).toEqual(['SUCCESS', 'SUCCESS'])
    expect((await completions(b.cq, 1))[0]).toMatchObject({ status: 'SUCCESS', opcode: 'RECV', byteLen: 0 })
    expect(b.buf.every((x) => x === 0x44)).toBe(true)
  })

  it('messages larger than the MTU arrive whole and are counted as per-MTU wire packets', async () => {
    p = await pair({ mtu: 1024, mrBytes: 1 << 20 })
    const { fabric, a, b } = p
    fabric.record()
    const data = pattern(100_000, 7)
    a.buf.set(data, 0)
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 100_000)], signaled: true, remoteAddr: b.mr.addr + 7, rkey: b.mr.rkey })
    a.qp.postSend({ wrId: 2, opcode: 'RDMA_READ', sgList: [sge(a, 200_000, 100_000)], signaled: true, remoteAddr: b.mr.addr + 7, rkey: b.mr.rkey })
    expect((await completions(a.cq, 2)).map((w) => w.status)).toEqual(['SUCCESS', 'SUCCESS'])
    expect(Buffer.compare(b.buf.subarray(7, 100_007), data)).toBe(0)
    expect(Buffer.compare(a.buf.subarray(200_000, 300_000), data)).toBe(0)
    const write = fabric.recorded.find((r) => r.opcode === 'RDMA_WRITE')!
    const read = fabric.recorded.find((r) => r.opcode === 'RDMA_READ')!
    const response = fabric.recorded.find((r) => r.opcode === 'READ_RESPONSE')!
    expect(write.packets).toBe(98)
    expect(read.psn).toBe((write.psn + 98) & 0xffffff) // a READ request reserves one PSN per response packet
    expect(response).toMatchObject({ psn: read.psn, packets: 98, length: 100_000 })
    expect(fabric.stats.wirePackets).toBeGreaterThanOrEqual(98 + 1 + 98 + 1)
  })

  it('PSNs wrap at 2^24 without losing or repeating a WR', async () => {
    p = await pair({ psnA: 0xfffff0, psnB: 0xfffffa, mtu: 256 })
    const { a, b } = p
    for (let i = 0; i < 40; i++) {
      a.buf[i] = i + 1
      a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, i, 1)], signaled: true, remoteAddr: b.mr.addr + i, rkey: b.mr.rkey })
      b.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(b, 0, 600)], signaled: true, remoteAddr: a.mr.addr + 1000, rkey: a.mr.rkey })
    }
    expect((await completions(a.cq, 40)).map((w) => w.wrId)).toEqual([...Array(40).keys()])
    expect((await completions(b.cq, 40)).every((w) => w.status === 'SUCCESS')).toBe(true)
    expect([...b.buf.subarray(0, 40)]).toEqual([...Array(40).keys()].map((i) => i + 1))
    expect(a.qp.snapshot().requester!.nextPsn).toBe((0xfffff0 + 40) & 0xffffff)
    expect(b.qp.snapshot().requester!.nextPsn).toBe((0xfffffa + 40 * 3) & 0xffffff)
  })

  it('unsignaled WRs produce no completion when they succeed; completions keep post order', async () => {
    p = await pair()
    const { a, b } = p
    for (let i = 0; i < 10; i++) {
      a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: i % 3 === 0, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    }
    expect((await completions(a.cq, 4)).map((w) => w.wrId)).toEqual([0, 3, 6, 9])
    await new Promise((r) => setTimeout(r, 10))
    expect(a.cq.poll(10)).toEqual([])
  })
})
