/** Every failure status a provider can produce: which WR fails with what, what flushes, and that memory stays untouched. */
import { expect } from 'vitest'
import { needs, type Suite } from '../suite.js'
import { faultsOf } from '../target.js'
import { expectBytes, expectStatus, fill, openSession, outcomes, peerOf, rawPair, register, settleOrder, snapshot, takeCompletions, writeU64, readU64 } from '../fixtures.js'
import type { MemoryRegion, QueuePair, RemoteRegion } from '@rdma-session/core'

/** An rkey no region of the peer has. */
const badRkey = (mr: MemoryRegion): number => (mr.rkey ^ 0x00a5a5a5) >>> 0

/** A session with `n` QPs on the initiator side (each can take one fatal error). */
async function qpsOf(suite: Suite, n: number): Promise<{ qas: QueuePair[]; qbs: QueuePair[] }> {
  const { session, peer } = await openSession(suite.env, { qps: Array.from({ length: n }, () => ({})) })
  return { qas: session.qps, qbs: session.qps.map((q) => peerOf(peer, q)) }
}

export function errorStatusTests(suite: Suite): void {
  suite.test('REM_ACCESS_ERR for a bad rkey: target memory untouched, requester QP moves to ERR', async () => {
    const { qas } = await qpsOf(suite, 2)
    const [q1, q2] = qas as [QueuePair, QueuePair]
    const mrA = register(suite.env.a, 4096)
    const mrB = register(suite.env.b, 4096)
    const before = fill(mrB, 1)
    fill(mrA, 2)
    const bad: RemoteRegion = { ...mrB.region(0, 1024), rkey: badRkey(mrB) }
    await expectStatus(() => q1.write(mrA.slice(0, 1024), bad), 'REM_ACCESS_ERR')
    expectBytes(snapshot(mrB), before, 'target of the rejected WRITE')
    expect(q1.state, 'the requester QP is in ERR after a remote access error').toBe('ERR')

    const local = fill(mrA, 3)
    await expectStatus(() => q2.read(mrA.slice(0, 1024), bad), 'REM_ACCESS_ERR')
    expectBytes(snapshot(mrA), local, 'local buffer of the rejected READ')
  })

  suite.test('REM_ACCESS_ERR for a range outside the region (past the end, before the start)', async () => {
    const { qas } = await qpsOf(suite, 2)
    const [q1, q2] = qas as [QueuePair, QueuePair]
    const mrA = register(suite.env.a, 8192)
    const mrB = register(suite.env.b, 4096)
    const before = fill(mrB, 4)
    fill(mrA, 5)
    const pastEnd: RemoteRegion = { addr: mrB.addr + 4096 - 8, rkey: mrB.rkey, length: 64 }
    await expectStatus(() => q1.write(mrA.slice(0, 64), pastEnd), 'REM_ACCESS_ERR')
    expectBytes(snapshot(mrB), before, 'region after a WRITE that overruns its end')
    const local = snapshot(mrA)
    const beforeStart: RemoteRegion = { addr: mrB.addr - 8, rkey: mrB.rkey, length: 64 }
    await expectStatus(() => q2.read(mrA.slice(0, 64), beforeStart), 'REM_ACCESS_ERR')
    expectBytes(snapshot(mrA), local, 'local buffer of a READ that starts before the region')
  })

  suite.test('an exposed sub-range has a key of its own: one byte past it (or before it) is REM_ACCESS_ERR, memory around it untouched', async () => {
    const { a, b } = suite.env
    const mrB = register(b, 4096)
    const before = fill(mrB, 21)
    b.sessions.expose('window', mrB.region(1024, 512))
    const { qas } = await qpsOf(suite, 3)
    const [q1, q2, q3] = qas as [QueuePair, QueuePair, QueuePair]
    const session = a.sessions.get(a.sessions.list()[0]!)
    const window = session.remoteRegions.get('window')!
    expect(window.length, 'the peer sees the exposed length').toBe(512)
    expect(window.rkey, "a key other than the whole region's").not.toBe(mrB.rkey)
    const mrA = register(a, 1024)
    const sent = fill(mrA, 22)
    await q1.write(mrA.slice(0, 512), window)
    const expected = before.slice()
    expected.set(sent.subarray(0, 512), 1024)
    expectBytes(snapshot(mrB), expected, 'the WRITE inside the exposed range')
    await expectStatus(() => q2.write(mrA.slice(0, 1), { ...window, addr: window.addr + 512, length: 1 }), 'REM_ACCESS_ERR')
    await expectStatus(() => q3.write(mrA.slice(0, 513), { ...window, length: 513 }), 'REM_ACCESS_ERR')
    expectBytes(snapshot(mrB), expected, 'memory after WRITEs one byte past the exposed range')
    await expectStatus(() => q1.read(mrA.slice(0, 1), { ...window, addr: window.addr - 1, length: 1 }), 'REM_ACCESS_ERR')
  })

  suite.test('REM_ACCESS_ERR when the region lacks remote-write or remote-read', async () => {
    const { qas } = await qpsOf(suite, 4)
    const [q1, q2, q3, q4] = qas as [QueuePair, QueuePair, QueuePair, QueuePair]
    const mrA = register(suite.env.a, 4096)
    fill(mrA, 6)
    const readOnly = register(suite.env.b, 4096, ['local-write', 'remote-read'])
    const writeOnly = register(suite.env.b, 4096, ['local-write', 'remote-write'])
    const localOnly = register(suite.env.b, 4096, ['local-write'])
    const ro = fill(readOnly, 7)
    const lo = fill(localOnly, 8)
    await expectStatus(() => q1.write(mrA.slice(0, 512), readOnly.region(0, 512)), 'REM_ACCESS_ERR')
    expectBytes(snapshot(readOnly), ro, 'region without remote-write')
    await expectStatus(() => q2.read(mrA.slice(0, 512), writeOnly.region(0, 512)), 'REM_ACCESS_ERR')
    await expectStatus(() => q3.write(mrA.slice(0, 512), localOnly.region(0, 512)), 'REM_ACCESS_ERR')
    expectBytes(snapshot(localOnly), lo, 'region without remote access')
    // The rights that were granted still work.
    await q4.read(mrA.slice(1024, 512), readOnly.region(0, 512))
    expectBytes(snapshot(mrA, 1024, 512), ro.subarray(0, 512), 'READ of a remote-read region')
    await q4.write(mrA.slice(0, 512), writeOnly.region(0, 512))
    expectBytes(snapshot(writeOnly, 0, 512), snapshot(mrA, 0, 512), 'WRITE to a remote-write region')
  })

  suite.test('REM_ACCESS_ERR for atomics on a region without remote-atomic', async () => {
    const { qas } = await qpsOf(suite, 2)
    const [q1, q2] = qas as [QueuePair, QueuePair]
    const mrA = register(suite.env.a, 64)
    const noAtomic = register(suite.env.b, 64, ['local-write', 'remote-read', 'remote-write'])
    writeU64(noAtomic, 0, 7n)
    await expectStatus(() => q1.compareAndSwap(mrA.slice(0, 8), noAtomic.region(0, 8), 7n, 9n), 'REM_ACCESS_ERR')
    await expectStatus(() => q2.fetchAndAdd(mrA.slice(8, 8), noAtomic.region(0, 8), 1n), 'REM_ACCESS_ERR')
    expect(readU64(noAtomic, 0), 'value untouched').toBe(7n)
  }, { requires: [needs('atomics')] })

  suite.test('LOC_PROT_ERR for a bad lkey or an SGE outside its region (raw postSend); nothing is sent', async () => {
    const { qas, qbs } = await qpsOf(suite, 2)
    const [q1, q2] = qas as [QueuePair, QueuePair]
    const mrA = register(suite.env.a, 4096)
    const mrB = register(suite.env.b, 4096)
    fill(mrA, 9)
    const before = fill(mrB, 10)
    q1.postSend({ wrId: 11, opcode: 'RDMA_WRITE', sgList: [{ addr: mrA.addr, length: 256, lkey: (mrA.lkey ^ 0x00a5a5a5) >>> 0 }], remoteAddr: mrB.addr, rkey: mrB.rkey })
    const badLkey = (await takeCompletions(q1.sendCq, 1))[0]
    expect(badLkey?.wrId).toBe(11)
    expect(badLkey?.status, 'status of the WRITE with a bad lkey').toBe('LOC_PROT_ERR')
    const recv = qbs[1]!.recv(mrB.slice(0, 4096))
    q2.postSend({ wrId: 12, opcode: 'SEND', sgList: [{ addr: mrA.addr + 4000, length: 256, lkey: mrA.lkey }] })
    const outside = (await takeCompletions(q2.sendCq, 1))[0]
    expect(outside?.wrId).toBe(12)
    expect(outside?.status, 'status of the SEND with an SGE outside its region').toBe('LOC_PROT_ERR')
    expectBytes(snapshot(mrB), before, 'peer memory after the failed WRs')
    let received = false
    void recv.then(() => (received = true), () => undefined)
    await new Promise((r) => setTimeout(r, 50))
    expect(received, 'no SEND reached the peer').toBe(false)
  })

  suite.test('receive buffer too small: LOC_LEN_ERR at the receiver, REM_INV_REQ_ERR at the sender', async () => {
    const { qas, qbs } = await qpsOf(suite, 1)
    const mrA = register(suite.env.a, 1024)
    const mrB = register(suite.env.b, 1024)
    fill(mrA, 12)
    const recv = qbs[0]!.recv(mrB.slice(0, 8))
    const [sent, received] = await outcomes([qas[0]!.send(mrA.slice(0, 64)), recv])
    expect(received, 'receiver status').toBe('LOC_LEN_ERR')
    expect(sent, 'sender status').toBe('REM_INV_REQ_ERR')
  })

  suite.test('receive buffer the receiver cannot write (bad lkey): LOC_PROT_ERR at the receiver, REM_OP_ERR at the sender', async () => {
    const { qas, qbs } = await qpsOf(suite, 1)
    const mrA = register(suite.env.a, 1024)
    const mrB = register(suite.env.b, 1024)
    fill(mrA, 16)
    const before = fill(mrB, 17)
    qbs[0]!.postRecv({ wrId: 21, sgList: [{ addr: mrB.addr, length: 512, lkey: (mrB.lkey ^ 0x00a5a5a5) >>> 0 }] })
    const [sent] = await outcomes([qas[0]!.send(mrA.slice(0, 64))])
    const unwritable = (await takeCompletions(qbs[0]!.recvCq, 1))[0]
    expect(unwritable?.wrId).toBe(21)
    expect(unwritable?.status, 'status of the receive with a bad lkey').toBe('LOC_PROT_ERR')
    expect(sent, 'sender status').toBe('REM_OP_ERR')
    expectBytes(snapshot(mrB), before, 'receiver memory')
  })

  suite.test('an atomic on an address that is not 8-byte aligned fails with REM_INV_REQ_ERR', async () => {
    const { qas } = await qpsOf(suite, 1)
    const mrA = register(suite.env.a, 64)
    const mrB = register(suite.env.b, 64)
    const before = fill(mrB, 18)
    await expectStatus(() => qas[0]!.fetchAndAdd(mrA.slice(0, 8), mrB.region(4, 8), 1n), 'REM_INV_REQ_ERR')
    expectBytes(snapshot(mrB), before, 'target of the misaligned atomic')
  }, { requires: [needs('atomics')] })

  suite.test('an unsignaled WR that fails still completes, with its wrId and status (raw verbs)', async () => {
    const { qas } = await qpsOf(suite, 1)
    const q = qas[0]!
    const mrA = register(suite.env.a, 64)
    const mrB = register(suite.env.b, 64)
    q.postSend({ wrId: 31, opcode: 'RDMA_WRITE', sgList: [mrA.slice()], remoteAddr: mrB.addr, rkey: badRkey(mrB), signaled: false })
    expect((await takeCompletions(q.sendCq, 1))[0]).toMatchObject({ wrId: 31, status: 'REM_ACCESS_ERR', opcode: 'RDMA_WRITE' })
  })

  suite.test('RNR_RETRY_EXC_ERR: SEND with no receive posted and rnrRetry < 7 (hand-built QPs)', async () => {
    const { a } = rawPair(suite.env, { rnrRetry: 1, minRnrTimer: 1 })
    const mrA = register(suite.env.a, 64)
    await expectStatus(() => a.send(mrA.slice(0, 16)), 'RNR_RETRY_EXC_ERR')
    expect(a.state).toBe('ERR')
  })

  suite.test('with rnrRetry = 7 a SEND waits for a receive posted later (hand-built QPs)', async () => {
    const { a, b } = rawPair(suite.env, { rnrRetry: 7, minRnrTimer: 1 })
    const mrA = register(suite.env.a, 64)
    const mrB = register(suite.env.b, 64)
    const sent = fill(mrA, 13, 0, 16)
    const send = outcomes([a.send(mrA.slice(0, 16))])
    await new Promise((r) => setTimeout(r, 30))
    const recv = outcomes([b.recv(mrB.slice(0, 64))])
    expect([...(await send), ...(await recv)]).toEqual(['SUCCESS', 'SUCCESS'])
    expectBytes(snapshot(mrB, 0, 16), sent, 'late-received bytes')
  })

  suite.test('WR_FLUSH_ERR: after a failed WR the later ones flush in order, and new posts flush at once', async () => {
    // A QP outside any session: a session drops a failed QP (both ends), so posts to it would be ERR_CLOSED.
    const q = rawPair(suite.env).a
    const mrA = register(suite.env.a, 4096)
    const mrB = register(suite.env.b, 4096)
    fill(mrA, 14)
    const bad: RemoteRegion = { ...mrB.region(0, 64), rkey: badRkey(mrB) }
    const ops = [q.write(mrA.slice(0, 64), bad), q.write(mrA.slice(64, 64), mrB.region(64, 64)), q.read(mrA.slice(128, 64), mrB.region(128, 64)), q.send(mrA.slice(192, 64))]
    const order = settleOrder(ops)
    expect(await outcomes(ops)).toEqual(['REM_ACCESS_ERR', 'WR_FLUSH_ERR', 'WR_FLUSH_ERR', 'WR_FLUSH_ERR'])
    expect(await order, 'completions in post order').toEqual([0, 1, 2, 3])
    expect(q.state).toBe('ERR')
    expect(await outcomes([q.write(mrA.slice(0, 64), mrB.region(0, 64)), q.recv(mrA.slice(0, 64))]), 'WRs posted in ERR').toEqual(['WR_FLUSH_ERR', 'WR_FLUSH_ERR'])
  })

  suite.test('WR_FLUSH_ERR: closing a QP flushes its outstanding receives promptly, in post order', async () => {
    const { b } = rawPair(suite.env)
    const mrB = register(suite.env.b, 1024)
    const recvs = [0, 1, 2].map((i) => b.recv(mrB.slice(i * 64, 64)))
    const order = settleOrder(recvs)
    const statuses = outcomes(recvs)
    const started = performance.now()
    await b.close()
    const took = performance.now() - started
    expect(await statuses).toEqual(['WR_FLUSH_ERR', 'WR_FLUSH_ERR', 'WR_FLUSH_ERR'])
    expect(await order).toEqual([0, 1, 2])
    expect(took, 'the provider flushed (core gives up waiting after 5 s)').toBeLessThan(2500)
  })

  suite.test('RETRY_EXC_ERR when the peer host stops answering (fault injection)', async () => {
    const faults = faultsOf(suite.env, suite.provider)
    const { a } = rawPair(suite.env, { timeout: 8, retryCnt: 1 })
    const mrA = register(suite.env.a, 64)
    const mrB = register(suite.env.b, 64)
    const before = fill(mrB, 15)
    await faults.killHost(suite.env.b)
    await expectStatus(() => a.write(mrA.slice(0, 64), mrB.region(0, 64)), 'RETRY_EXC_ERR')
    expect(a.state).toBe('ERR')
    expectBytes(snapshot(mrB), before, 'memory of the unreachable host')
  }, { requires: [needs('faultInjection')] })
}
