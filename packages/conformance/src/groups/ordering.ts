/** Ordering guarantees of one RC QP: message order, WRITE-before-SEND visibility, completions in post order. */
import { expect } from 'vitest'
import type { PostSendRequest, QueuePair } from '@rdma-session/core'
import { atLeast, type Suite } from '../suite.js'
import { expectBytes, fill, openSession, outcomes, peerOf, register, settleOrder, snapshot, takeCompletions } from '../fixtures.js'

async function deepPair(suite: Suite, depth: number): Promise<{ qa: QueuePair; qb: QueuePair }> {
  const caps = { maxSendWr: depth, maxRecvWr: depth }
  const { session, peer } = await openSession(suite.env, { qps: [{ caps }] })
  const qa = session.qps[0]!
  return { qa, qb: peerOf(peer, qa) }
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

export function orderingTests(suite: Suite): void {
  suite.test('200 SENDs on one QP arrive in order, one per receive, and complete in post order', async () => {
    const n = 200
    const { qa, qb } = await deepPair(suite, Math.min(256, suite.caps.maxQpWr))
    const slot = 16
    const mrA = register(suite.env.a, n * slot)
    const mrB = register(suite.env.b, n * slot)
    const viewA = Buffer.from(mrA.bytes.buffer, mrA.bytes.byteOffset, mrA.bytes.byteLength)
    const viewB = Buffer.from(mrB.bytes.buffer, mrB.bytes.byteOffset, mrB.bytes.byteLength)
    for (const i of range(n)) {
      viewA.writeUInt32LE(i, i * slot)
      viewA.writeUInt32LE(0xc0ffee00 + i, i * slot + 4)
    }
    const recvs = range(n).map((i) => qb.recv(mrB.slice(i * slot, slot)))
    const recvOrder = settleOrder(recvs)
    const sends = range(n).map((i) => qa.send(mrA.slice(i * slot, slot)))
    const sendOrder = settleOrder(sends)
    await Promise.all([...sends, ...recvs])
    expect(range(n).map((i) => viewB.readUInt32LE(i * slot)), 'receive i holds message i').toEqual(range(n))
    expect(range(n).map((i) => viewB.readUInt32LE(i * slot + 4) - 0xc0ffee00)).toEqual(range(n))
    expect(await sendOrder, 'send completions in post order').toEqual(range(n))
    expect(await recvOrder, 'receive completions in post order').toEqual(range(n))
  }, { requires: [atLeast('maxQpWr', 200)] })

  suite.test('a WRITE followed by a SEND: the written bytes are in place when the receive completes', async () => {
    const { qa, qb } = await deepPair(suite, 16)
    const size = 256 * 1024
    const mrA = register(suite.env.a, size + 64)
    const mrB = register(suite.env.b, size + 64)
    for (const round of range(4)) {
      const data = fill(mrA, 100 + round, 0, size)
      let seen: Uint8Array | null = null
      const recv = qb.recv(mrB.slice(size, 64)).then((wc) => {
        seen = snapshot(mrB, 0, size)
        return wc
      })
      const write = qa.write(mrA.slice(0, size), mrB.region(0, size))
      const send = qa.send(mrA.slice(size, 8))
      await Promise.all([write, send, recv])
      expectBytes(seen!, data, `round ${round}: region seen by the receive completion`)
    }
  })

  suite.test('completions come in post order across mixed opcodes; unsignaled WRs produce none (raw verbs)', async () => {
    const { qa, qb } = await deepPair(suite, 128)
    const mrA = register(suite.env.a, 1 << 20)
    const mrB = register(suite.env.b, 1 << 20)
    fill(mrB, 7)
    fill(mrA, 8)
    const kinds = ['RDMA_READ', 'RDMA_WRITE', 'SEND', 'RDMA_WRITE', 'RDMA_READ'] as const
    const wrs: PostSendRequest[] = []
    let sends = 0
    for (const i of range(60)) {
      const opcode = kinds[i % kinds.length]!
      const len = opcode === 'RDMA_READ' && i % 2 === 0 ? 65536 : 64
      const off = i * 16384
      const sgList = [mrA.slice(off, len)]
      if (opcode === 'SEND') {
        qb.postRecv({ wrId: 1000 + sends, sgList: [mrB.slice(off, 64)] })
        sends++
      }
      wrs.push({ wrId: i, opcode, sgList, signaled: i % 5 !== 3, ...(opcode === 'SEND' ? {} : { remoteAddr: mrB.region(off).addr, rkey: mrB.rkey }) })
    }
    qa.postSend(wrs)
    const signaled = wrs.filter((w) => w.signaled).map((w) => w.wrId)
    const got = await takeCompletions(qa.sendCq, signaled.length)
    expect(got.every((wc) => wc.status === 'SUCCESS'), JSON.stringify(got.filter((wc) => wc.status !== 'SUCCESS'))).toBe(true)
    expect(got.map((wc) => wc.wrId), 'signaled WRs, in post order').toEqual(signaled)
    expect(got.map((wc) => wc.opcode)).toEqual(wrs.filter((w) => w.signaled).map((w) => w.opcode))
    const recvs = await takeCompletions(qb.recvCq, sends)
    expect(recvs.map((wc) => wc.wrId), 'receive completions in post order').toEqual(range(sends).map((i) => 1000 + i))
    expect(qa.sendCq.poll(), 'nothing more').toEqual([])
    expect(qa.state, 'no error along the way (a duplicate or stray completion is one)').toBe('RTS')
  })

  suite.test('promise operations settle in post order: a 64 KiB READ completes before the small WRITE after it', async () => {
    const { qa } = await deepPair(suite, 32)
    const mrA = register(suite.env.a, 1 << 18)
    const mrB = register(suite.env.b, 1 << 18)
    fill(mrB, 9)
    fill(mrA, 10)
    const ops = [
      qa.read(mrA.slice(0, 65536), mrB.region(0, 65536)),
      qa.write(mrA.slice(65536, 8), mrB.region(65536, 8)),
      qa.read(mrA.slice(70000, 65536), mrB.region(70000, 65536)),
      qa.write(mrA.slice(140000, 16), mrB.region(140000, 16)),
      qa.write(mrA.slice(150000, 65536), mrB.region(150000, 65536)),
      qa.read(mrA.slice(230000, 8), mrB.region(230000, 8)),
    ]
    const order = settleOrder(ops)
    expect(await outcomes(ops), 'every operation succeeds').toEqual(ops.map(() => 'SUCCESS'))
    expect(await order).toEqual(range(ops.length))
  })

  suite.test('WRITEs to the same address apply in post order (the last one wins)', async () => {
    const { qa } = await deepPair(suite, 64)
    const mrA = register(suite.env.a, 50 * 8)
    const mrB = register(suite.env.b, 8)
    const viewA = Buffer.from(mrA.bytes.buffer, mrA.bytes.byteOffset, mrA.bytes.byteLength)
    for (const i of range(50)) viewA.writeBigUInt64LE(BigInt(i + 1) * 0x0101010101n, i * 8)
    await Promise.all(range(50).map((i) => qa.write(mrA.slice(i * 8, 8), mrB.region(0, 8))))
    expect(Buffer.from(mrB.bytes).readBigUInt64LE(0)).toBe(50n * 0x0101010101n)
  })
}
