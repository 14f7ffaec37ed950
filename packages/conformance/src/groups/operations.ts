/** Every operation moves the right bytes, byte for byte, and reports the right completion. */
import { expect } from 'vitest'
import { atLeast, lacks, needs, type Suite } from '../suite.js'
import { connectRaw, expectBytes, expectCode, fill, openSession, pattern, peerOf, readU64, register, snapshot, takeCompletions, writeU64, type SessionPair } from '../fixtures.js'
import type { MemoryRegion, QueuePair } from '@rdma-session/core'

interface OneQp extends SessionPair {
  readonly qa: QueuePair
  readonly qb: QueuePair
  readonly mrA: MemoryRegion
  readonly mrB: MemoryRegion
}

const REGION = 128 * 1024

async function oneQp(suite: Suite): Promise<OneQp> {
  const pair = await openSession(suite.env, { qps: [{}] })
  const qa = pair.session.qps[0]!
  return { ...pair, qa, qb: peerOf(pair.peer, qa), mrA: register(suite.env.a, REGION), mrB: register(suite.env.b, REGION) }
}

export function operationTests(suite: Suite): void {
  suite.test('SEND lands byte-for-byte in the posted receive', async () => {
    const { qa, qb, mrA, mrB } = await oneQp(suite)
    const sent = fill(mrA, 1, 0, 3000)
    const recv = qb.recv(mrB.slice(100, 4000))
    const sendWc = await qa.send(mrA.slice(0, 3000))
    const recvWc = await recv
    expect(sendWc).toMatchObject({ status: 'SUCCESS', opcode: 'SEND', qpn: qa.qpn })
    expect(recvWc).toMatchObject({ status: 'SUCCESS', opcode: 'RECV', qpn: qb.qpn, byteLen: 3000 })
    expect(recvWc.imm, 'a plain SEND carries no immediate').toBeUndefined()
    expectBytes(snapshot(mrB, 100, 3000), sent, 'received bytes')
    expect(mrB.bytes.subarray(0, 100).every((v) => v === 0), 'bytes before the receive buffer untouched').toBe(true)
    expect(mrB.bytes.subarray(3100, 4100).every((v) => v === 0), 'bytes after the message untouched').toBe(true)
  })

  suite.test('SEND_WITH_IMM delivers the payload and the 32-bit immediate', async () => {
    const { qa, qb, mrA, mrB } = await oneQp(suite)
    const sent = fill(mrA, 2, 0, 512)
    const recv = qb.recv(mrB.slice(0, 512))
    expect(await qa.send(mrA.slice(0, 512), { imm: 0x8badf00d })).toMatchObject({ status: 'SUCCESS', opcode: 'SEND_WITH_IMM' })
    expect(await recv).toMatchObject({ status: 'SUCCESS', opcode: 'RECV', byteLen: 512, imm: 0x8badf00d })
    expectBytes(snapshot(mrB, 0, 512), sent, 'received bytes')
  }, { requires: [needs('immediate')] })

  suite.test('zero-length SEND completes a receive with byteLen 0', async () => {
    const { qa, qb, mrB } = await oneQp(suite)
    mrB.bytes.fill(0xee, 0, 64)
    const recv = qb.recv(mrB.slice(0, 64))
    qa.postSend({ wrId: 5, opcode: 'SEND', sgList: [] })
    const [wc] = await takeCompletions(qa.sendCq, 1)
    expect(wc).toMatchObject({ wrId: 5, status: 'SUCCESS', opcode: 'SEND' })
    expect(await recv).toMatchObject({ status: 'SUCCESS', opcode: 'RECV', byteLen: 0 })
    expect(mrB.bytes.subarray(0, 64).every((v) => v === 0xee), 'receive buffer untouched').toBe(true)
  })

  suite.test('RDMA_WRITE lands byte-for-byte and touches nothing around the target range', async () => {
    const { qa, mrA, mrB } = await oneQp(suite)
    const sent = fill(mrA, 3, 0, 10_000)
    mrB.bytes.fill(0x5a)
    const wc = await qa.write(mrA.slice(0, 10_000), mrB.region(777, 10_000))
    expect(wc).toMatchObject({ status: 'SUCCESS', opcode: 'RDMA_WRITE', qpn: qa.qpn })
    expectBytes(snapshot(mrB, 777, 10_000), sent, 'written bytes')
    expect(mrB.bytes.subarray(0, 777).every((v) => v === 0x5a), 'bytes before the target untouched').toBe(true)
    expect(mrB.bytes.subarray(10_777).every((v) => v === 0x5a), 'bytes after the target untouched').toBe(true)
  })

  suite.test('RDMA_WRITE does not consume a posted receive', async () => {
    const { qa, qb, mrA, mrB } = await oneQp(suite)
    fill(mrA, 4, 0, 64)
    const recv = qb.recv(mrB.slice(4096, 64))
    await qa.write(mrA.slice(0, 64), mrB.region(0, 64))
    const sent = fill(mrA, 5, 1024, 32)
    await qa.send(mrA.slice(1024, 32))
    expect(await recv, 'the receive is taken by the SEND, not the WRITE').toMatchObject({ opcode: 'RECV', byteLen: 32 })
    expectBytes(snapshot(mrB, 4096, 32), sent, 'received bytes')
  })

  suite.test('RDMA_WRITE_WITH_IMM writes, consumes one receive and delivers the immediate', async () => {
    const { qa, qb, mrA, mrB } = await oneQp(suite)
    const sent = fill(mrA, 6, 0, 5000)
    mrB.bytes.fill(0x11, 60_000, 60_016)
    const recv = qb.recv(mrB.slice(60_000, 16))
    expect(await qa.write(mrA.slice(0, 5000), mrB.region(1000, 5000), { imm: 0xfeedbeef })).toMatchObject({ status: 'SUCCESS', opcode: 'RDMA_WRITE_WITH_IMM' })
    expect(await recv).toMatchObject({ status: 'SUCCESS', opcode: 'RECV_RDMA_WITH_IMM', imm: 0xfeedbeef, byteLen: 5000, qpn: qb.qpn })
    expectBytes(snapshot(mrB, 1000, 5000), sent, 'written bytes')
    expect(mrB.bytes.subarray(60_000, 60_016).every((v) => v === 0x11), 'the receive buffer gets no payload').toBe(true)
  }, { requires: [needs('immediate')] })

  suite.test('RDMA_READ of 64 KiB (many MTUs) is byte-exact', async () => {
    const { qa, mrA, mrB } = await oneQp(suite)
    const remote = fill(mrB, 7, 4096, 65536)
    mrA.bytes.fill(0x77)
    const wc = await qa.read(mrA.slice(8, 65536), mrB.region(4096, 65536))
    expect(wc).toMatchObject({ status: 'SUCCESS', opcode: 'RDMA_READ', qpn: qa.qpn })
    expectBytes(snapshot(mrA, 8, 65536), remote, 'read bytes')
    expect(mrA.bytes.subarray(0, 8).every((v) => v === 0x77), 'local bytes before the slice untouched').toBe(true)
    expect(mrA.bytes[65544], 'local byte after the slice untouched').toBe(0x77)
  })

  suite.test('the peer (acceptor) side initiates operations too', async () => {
    const { qa, qb, mrA, mrB } = await oneQp(suite)
    const written = fill(mrB, 8, 0, 2048)
    await qb.write(mrB.slice(0, 2048), mrA.region(0, 2048))
    expectBytes(snapshot(mrA, 0, 2048), written, 'bytes written by the peer')
    const remote = fill(mrA, 9, 8192, 4096)
    await qb.read(mrB.slice(8192, 4096), mrA.region(8192, 4096))
    expectBytes(snapshot(mrB, 8192, 4096), remote, 'bytes read by the peer')
    const recv = qa.recv(mrA.slice(20_000, 100))
    const sent = fill(mrB, 10, 30_000, 100)
    await qb.send(mrB.slice(30_000, 100))
    expect(await recv).toMatchObject({ byteLen: 100 })
    expectBytes(snapshot(mrA, 20_000, 100), sent, 'bytes sent by the peer')
  })

  suite.test('ATOMIC_CMP_AND_SWP swaps on a hit, leaves memory alone on a miss, and returns the original', async () => {
    const { qa, mrA, mrB } = await oneQp(suite)
    writeU64(mrB, 64, 0x0102030405060708n)
    writeU64(mrB, 72, 0xa5a5a5a5a5a5a5a5n)
    const hit = await qa.compareAndSwap(mrA.slice(0, 8), mrB.region(64, 8), 0x0102030405060708n, 0xfffffffffffffff0n)
    expect(hit).toMatchObject({ status: 'SUCCESS', opcode: 'ATOMIC_CMP_AND_SWP' })
    expect(readU64(mrA, 0), 'original value returned on a hit').toBe(0x0102030405060708n)
    expect(readU64(mrB, 64), 'swapped on a hit').toBe(0xfffffffffffffff0n)
    expect(readU64(mrB, 72), 'the next 8 bytes untouched').toBe(0xa5a5a5a5a5a5a5a5n)

    await qa.compareAndSwap(mrA.slice(8, 8), mrB.region(64, 8), 0x0102030405060708n, 42n)
    expect(readU64(mrA, 8), 'current value returned on a miss').toBe(0xfffffffffffffff0n)
    expect(readU64(mrB, 64), 'unchanged on a miss').toBe(0xfffffffffffffff0n)
  }, { requires: [needs('atomics')] })

  suite.test('ATOMIC_FETCH_AND_ADD adds, returns the original and wraps at 2^64', async () => {
    const { qa, mrA, mrB } = await oneQp(suite)
    writeU64(mrB, 128, 1000n)
    expect(await qa.fetchAndAdd(mrA.slice(0, 8), mrB.region(128, 8), 234n)).toMatchObject({ status: 'SUCCESS', opcode: 'ATOMIC_FETCH_AND_ADD' })
    expect(readU64(mrA, 0), 'original value returned').toBe(1000n)
    expect(readU64(mrB, 128), 'sum stored').toBe(1234n)
    const adds = await Promise.all(Array.from({ length: 10 }, (_, i) => qa.fetchAndAdd(mrA.slice(16 + 8 * i, 8), mrB.region(128, 8), 1n)))
    expect(adds).toHaveLength(10)
    expect(readU64(mrB, 128), 'ten more adds applied once each').toBe(1244n)
    const seen = Array.from({ length: 10 }, (_, i) => readU64(mrA, 16 + 8 * i)).sort((x, y) => (x < y ? -1 : 1))
    expect(seen, 'each add saw a distinct original').toEqual(Array.from({ length: 10 }, (_, i) => 1234n + BigInt(i)))
    writeU64(mrB, 136, 0xfffffffffffffffen)
    await qa.fetchAndAdd(mrA.slice(8, 8), mrB.region(136, 8), 5n)
    expect(readU64(mrB, 136), 'wraps modulo 2^64').toBe(3n)
  }, { requires: [needs('atomics')] })

  suite.test('inline SEND and RDMA_WRITE from a plain Uint8Array copy the bytes at post time', async () => {
    const { qa, qb, mrB } = await oneQp(suite)
    const n = Math.min(32, suite.caps.maxInline, qa.caps.maxInlineData)
    const data = pattern(n, 11)
    const expected = Uint8Array.from(data)
    const recv = qb.recv(mrB.slice(0, 64))
    const send = qa.send(data)
    data.fill(0)
    expect(await send).toMatchObject({ status: 'SUCCESS', opcode: 'SEND' })
    expect(await recv).toMatchObject({ byteLen: n })
    expectBytes(snapshot(mrB, 0, n), expected, 'inline SEND bytes')

    const data2 = pattern(n, 12)
    const expected2 = Uint8Array.from(data2)
    const write = qa.write(data2, mrB.region(1000, n))
    data2.fill(0)
    expect(await write).toMatchObject({ status: 'SUCCESS', opcode: 'RDMA_WRITE' })
    expectBytes(snapshot(mrB, 1000, n), expected2, 'inline WRITE bytes')
  }, { requires: [atLeast('maxInline', 1)] })

  suite.test('SGE lists: raw postSend gathers several SGEs, postRecv scatters them, RDMA_READ scatters too', async () => {
    const { qa, qb, mrA, mrB } = await oneQp(suite)
    const pieces = [[0, 100], [1000, 200], [5000, 300]].slice(0, Math.min(3, qa.caps.maxSendSge)) as [number, number][]
    const gathered = Buffer.concat(pieces.map(([off, len], i) => fill(mrA, 20 + i, off, len)))
    const total = gathered.length
    const first = Math.floor(total / 2)
    qb.postRecv({ wrId: 88, sgList: [mrB.slice(0, first), mrB.slice(4096, total - first + 50)] })
    qa.postSend({ wrId: 77, opcode: 'SEND', sgList: pieces.map(([off, len]) => mrA.slice(off, len)) })
    expect((await takeCompletions(qa.sendCq, 1))[0]).toMatchObject({ wrId: 77, status: 'SUCCESS', opcode: 'SEND' })
    expect((await takeCompletions(qb.recvCq, 1))[0]).toMatchObject({ wrId: 88, status: 'SUCCESS', opcode: 'RECV', byteLen: total })
    expectBytes(Buffer.concat([snapshot(mrB, 0, first), snapshot(mrB, 4096, total - first)]), gathered, 'scattered receive')

    qa.postSend({ wrId: 79, opcode: 'RDMA_WRITE', sgList: pieces.map(([off, len]) => mrA.slice(off, len)), remoteAddr: mrB.region(20_000).addr, rkey: mrB.rkey })
    expect((await takeCompletions(qa.sendCq, 1))[0]).toMatchObject({ wrId: 79, status: 'SUCCESS', opcode: 'RDMA_WRITE' })
    expectBytes(snapshot(mrB, 20_000, total), gathered, 'gathered RDMA_WRITE')

    const remote = fill(mrB, 30, 40_000, 700)
    qa.postSend({ wrId: 80, opcode: 'RDMA_READ', sgList: [mrA.slice(50_000, 300), mrA.slice(60_000, 400)], remoteAddr: mrB.region(40_000).addr, rkey: mrB.rkey })
    expect((await takeCompletions(qa.sendCq, 1))[0]).toMatchObject({ wrId: 80, status: 'SUCCESS', opcode: 'RDMA_READ' })
    expectBytes(Buffer.concat([snapshot(mrA, 50_000, 300), snapshot(mrA, 60_000, 400)]), remote, 'scattered RDMA_READ')
  }, { requires: [atLeast('maxSge', 2)] })

  suite.test('raw postSend of an unsignaled WR completes silently; a signaled one after it completes', async () => {
    const { qa, mrA, mrB } = await oneQp(suite)
    const one = fill(mrA, 40, 0, 256)
    const two = fill(mrA, 41, 256, 256)
    qa.postSend([
      { wrId: 1, opcode: 'RDMA_WRITE', sgList: [mrA.slice(0, 256)], remoteAddr: mrB.region(0).addr, rkey: mrB.rkey, signaled: false },
      { wrId: 2, opcode: 'RDMA_WRITE', sgList: [mrA.slice(256, 256)], remoteAddr: mrB.region(256).addr, rkey: mrB.rkey, signaled: true },
    ])
    const [wc] = await takeCompletions(qa.sendCq, 1)
    expect(wc).toMatchObject({ wrId: 2, status: 'SUCCESS' })
    expect(qa.sendCq.poll(), 'no completion for the unsignaled WR').toEqual([])
    expectBytes(snapshot(mrB, 0, 256), one, 'unsignaled WRITE')
    expectBytes(snapshot(mrB, 256, 256), two, 'signaled WRITE')
    expect(qa.outstanding.send, 'both WRs retired').toBe(0)
  })

  suite.test('a provider without atomics refuses atomic operations with ERR_UNSUPPORTED, touching nothing', async () => {
    const { qa, mrA, mrB } = await oneQp(suite)
    writeU64(mrB, 0, 5n)
    await expectCode(() => qa.compareAndSwap(mrA.slice(0, 8), mrB.region(0, 8), 5n, 6n), 'ERR_UNSUPPORTED')
    await expectCode(() => qa.fetchAndAdd(mrA.slice(0, 8), mrB.region(0, 8), 1n), 'ERR_UNSUPPORTED')
    expect(readU64(mrB, 0)).toBe(5n)
    expect(qa.state, 'the QP is still usable').toBe('RTS')
  }, { requires: [lacks('atomics')] })

  suite.test('a provider without immediate data refuses SEND_WITH_IMM and RDMA_WRITE_WITH_IMM with ERR_UNSUPPORTED', async () => {
    const { qa, mrA, mrB } = await oneQp(suite)
    await expectCode(() => qa.send(mrA.slice(0, 8), { imm: 1 }), 'ERR_UNSUPPORTED')
    await expectCode(() => qa.write(mrA.slice(0, 8), mrB.region(0, 8), { imm: 1 }), 'ERR_UNSUPPORTED')
    expect(qa.state, 'the QP is still usable').toBe('RTS')
  }, { requires: [lacks('immediate')] })

  suite.test('on a CQ shared by two QPs, a SEND completes a receive of the QP it was sent to, with that QPN', async () => {
    const { a, b } = suite.env
    const cq = b.createCq({ depth: 16 })
    const [qb1, qb2] = [b.createQp({ sendCq: cq, recvCq: cq }), b.createQp({ sendCq: cq, recvCq: cq })]
    const [qa1, qa2] = [a.createQp(), a.createQp()]
    connectRaw(suite.env, qa1, qb1)
    connectRaw(suite.env, qa2, qb2)
    const mrA = register(a, 256)
    const mrB = register(b, 256)
    qb1.postRecv({ wrId: 1, sgList: [mrB.slice(0, 64)] })
    qb2.postRecv({ wrId: 2, sgList: [mrB.slice(64, 64)] })
    const sent = fill(mrA, 50, 0, 40)
    await qa2.send(mrA.slice(0, 40))
    const [wc] = await takeCompletions(cq, 1)
    expect(wc, 'the receive of the QP the SEND went to').toMatchObject({ wrId: 2, qpn: qb2.qpn, status: 'SUCCESS', opcode: 'RECV', byteLen: 40 })
    expectBytes(snapshot(mrB, 64, 40), sent, 'received bytes')
    expect(mrB.bytes.subarray(0, 64).every((v) => v === 0), "the other QP's receive buffer untouched").toBe(true)
    expect([qb1.outstanding.recv, qb2.outstanding.recv], 'receives still posted').toEqual([1, 0])
  })
}
