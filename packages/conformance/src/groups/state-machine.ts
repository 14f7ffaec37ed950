/** The RC QP state machine: the valid path, invalid transitions, attribute checks, posting rules and flushes. */
import { expect } from 'vitest'
import type { QpModifyAttrs, QpState, QueuePair } from '@rdma-session/core'
import type { Suite } from '../suite.js'
import { ALL_ACCESS_BITS, commonMtu, connectRaw, expectBytes, expectCode, fill, outcomes, rawPair, register, settleOrder, snapshot, sleep, takeCompletions, toInit, toRtr, toRts } from '../fixtures.js'

/** Invalid targets from each reachable state (transitions absent from the IB RC table). */
const INVALID: Record<'RESET' | 'INIT' | 'RTR' | 'RTS' | 'SQD' | 'ERR', QpState[]> = {
  RESET: ['RTR', 'RTS', 'SQD', 'SQE'],
  INIT: ['RTS', 'SQD', 'SQE'],
  RTR: ['INIT', 'RTR', 'SQD', 'SQE'],
  RTS: ['INIT', 'RTR', 'SQE'],
  SQD: ['INIT', 'RTR', 'SQE'],
  ERR: ['INIT', 'RTR', 'RTS', 'SQD', 'SQE'],
}

async function expectAttrError(qp: QueuePair, attrs: QpModifyAttrs, attribute: string): Promise<void> {
  const before = qp.state
  const err = await expectCode(() => qp.modify(attrs), 'ERR_QP_ATTR')
  expect(err.message, 'the message names the attribute').toContain(attribute)
  expect(err.details.attribute, 'details.attribute').toBe(attribute)
  expect(qp.state, 'state unchanged after a refused modify').toBe(before)
}

export function stateMachineTests(suite: Suite): void {
  suite.test('valid path RESET → INIT → RTR → RTS → SQD → RTS → ERR → RESET, with query() reflecting each step', async () => {
    const { a, b } = suite.env
    const mtu = commonMtu(suite.env)
    const qa = a.createQp()
    const qb = b.createQp()
    expect(qa.state).toBe('RESET')
    expect(qa.query()).toMatchObject({ qpn: qa.qpn, state: 'RESET' })

    qa.modify({ state: 'INIT', accessFlags: ALL_ACCESS_BITS, portNum: 1, pkeyIndex: 0 })
    expect(qa.state).toBe('INIT')
    expect(qa.query()).toMatchObject({ state: 'INIT', accessFlags: ALL_ACCESS_BITS })

    toInit(qb)
    qa.modify({ state: 'RTR', remote: b.endpoint, pathMtu: mtu, destQpn: qb.qpn, rqPsn: qb.localPsn, maxDestRdAtomic: 16, minRnrTimer: 12 })
    expect(qa.state).toBe('RTR')
    expect(qa.query()).toMatchObject({ state: 'RTR', remote: b.endpoint, pathMtu: mtu, destQpn: qb.qpn, rqPsn: qb.localPsn })
    qa.remoteQpn = qb.qpn

    qa.modify({ state: 'RTS', sqPsn: qa.localPsn, timeout: 14, retryCnt: 6, rnrRetry: 5, maxRdAtomic: 16 })
    expect(qa.state).toBe('RTS')
    expect(qa.query()).toMatchObject({ state: 'RTS', sqPsn: qa.localPsn, timeout: 14, retryCnt: 6, rnrRetry: 5 })

    qa.modify({ state: 'SQD' })
    expect(qa.state).toBe('SQD')
    qa.modify({ state: 'RTS' })
    expect(qa.state).toBe('RTS')

    // The QP still works after the SQD round trip.
    toRtr(qb, a, qa, mtu)
    toRts(qb)
    const mrA = register(a, 256)
    const mrB = register(b, 256)
    const sent = fill(mrA, 1)
    await qa.write(mrA.slice(), mrB.region())
    expectBytes(snapshot(mrB), sent, 'WRITE after SQD -> RTS')

    qa.modify({ state: 'ERR' })
    expect(qa.state).toBe('ERR')
    qa.modify({ state: 'RESET' })
    expect(qa.state).toBe('RESET')

    // A reset QP can be connected again (here to a fresh peer QP) and works.
    const qb2 = b.createQp()
    connectRaw(suite.env, qa, qb2)
    const again = fill(mrA, 2)
    await qa.write(mrA.slice(), mrB.region())
    expectBytes(snapshot(mrB), again, 'WRITE after RESET and reconnect')
  })

  suite.test('invalid transitions throw ERR_QP_STATE naming both states and leave the state unchanged', async () => {
    const { a, b } = suite.env
    const mtu = commonMtu(suite.env)
    const qa = a.createQp()
    const qb = b.createQp()
    const check = async (from: keyof typeof INVALID): Promise<void> => {
      expect(qa.state).toBe(from)
      for (const to of INVALID[from]) {
        const err = await expectCode(() => qa.modify({ state: to }), 'ERR_QP_STATE')
        expect(err.details, `${from} -> ${to}`).toMatchObject({ from, to })
        expect(qa.state, `state after refused ${from} -> ${to}`).toBe(from)
      }
    }
    await check('RESET')
    toInit(qa)
    await check('INIT')
    toInit(qb)
    toRtr(qa, b, qb, mtu)
    await check('RTR')
    toRts(qa)
    await check('RTS')
    qa.modify({ state: 'SQD' })
    await check('SQD')
    qa.modify({ state: 'ERR' })
    await check('ERR')
  })

  suite.test('a missing, misplaced or out-of-range attribute throws ERR_QP_ATTR naming it', async () => {
    const { a, b } = suite.env
    const mtu = commonMtu(suite.env)
    const qa = a.createQp()
    const qb = b.createQp()
    await expectAttrError(qa, { state: 'INIT' }, 'accessFlags')
    await expectAttrError(qa, { state: 'INIT', accessFlags: ALL_ACCESS_BITS, sqPsn: 1 }, 'sqPsn')
    await expectAttrError(qa, { state: 'INIT', accessFlags: 99 }, 'accessFlags')
    toInit(qa)
    toInit(qb)
    const rtr = { state: 'RTR', remote: b.endpoint, pathMtu: mtu, destQpn: qb.qpn, rqPsn: qb.localPsn } as const
    await expectAttrError(qa, { ...rtr, destQpn: undefined }, 'destQpn')
    await expectAttrError(qa, { ...rtr, remote: undefined }, 'remote')
    await expectAttrError(qa, { ...rtr, rqPsn: undefined }, 'rqPsn')
    await expectAttrError(qa, { ...rtr, pathMtu: 3000 as never }, 'pathMtu')
    await expectAttrError(qa, { ...rtr, destQpn: 0x1000000 }, 'destQpn')
    qa.modify(rtr)
    await expectAttrError(qa, { state: 'RTS' }, 'sqPsn')
    await expectAttrError(qa, { state: 'RTS', sqPsn: qa.localPsn, rnrRetry: 8 }, 'rnrRetry')
    await expectAttrError(qa, { state: 'RTS', sqPsn: qa.localPsn, destQpn: qb.qpn }, 'destQpn')
    toRts(qa)
    expect(qa.state).toBe('RTS')
  })

  suite.test('posting sends in RESET, INIT or RTR and receives in RESET throws ERR_QP_STATE; receives posted in INIT are kept', async () => {
    const { a, b } = suite.env
    const mtu = commonMtu(suite.env)
    const qa = a.createQp()
    const qb = b.createQp()
    const mrA = register(a, 256)
    const mrB = register(b, 256)
    await expectCode(() => qb.postRecv({ sgList: [mrB.slice(0, 64)] }), 'ERR_QP_STATE')
    await expectCode(() => qb.recv(mrB.slice(0, 64)), 'ERR_QP_STATE')
    await expectCode(() => qa.postSend({ opcode: 'SEND', sgList: [mrA.slice(0, 8)] }), 'ERR_QP_STATE')
    await expectCode(() => qa.send(mrA.slice(0, 8)), 'ERR_QP_STATE')
    toInit(qa)
    toInit(qb)
    await expectCode(() => qa.send(mrA.slice(0, 8)), 'ERR_QP_STATE')
    await expectCode(() => qa.write(mrA.slice(0, 8), mrB.region(0, 8)), 'ERR_QP_STATE')
    const early = qb.recv(mrB.slice(0, 64))
    toRtr(qa, b, qb, mtu)
    toRtr(qb, a, qa, mtu)
    await expectCode(() => qa.send(mrA.slice(0, 8)), 'ERR_QP_STATE')
    toRts(qa)
    const sent = fill(mrA, 3, 0, 48)
    await qa.send(mrA.slice(0, 48))
    expect(await early, 'the receive posted in INIT').toMatchObject({ status: 'SUCCESS', byteLen: 48 })
    expectBytes(snapshot(mrB, 0, 48), sent, 'bytes received into the early receive')
  })

  suite.test('modify to ERR flushes outstanding receives in post order, without closing the QP', async () => {
    const { a: qa, b: qb } = rawPair(suite.env)
    const mrB = register(suite.env.b, 1024)
    const recvs = [0, 1, 2, 3].map((i) => qb.recv(mrB.slice(i * 64, 64)))
    const order = settleOrder(recvs)
    qb.modify({ state: 'ERR' })
    expect(await outcomes(recvs)).toEqual(['WR_FLUSH_ERR', 'WR_FLUSH_ERR', 'WR_FLUSH_ERR', 'WR_FLUSH_ERR'])
    expect(await order).toEqual([0, 1, 2, 3])
    expect(qb.closed).toBe(false)
    expect(qb.outstanding).toEqual({ send: 0, recv: 0, backlog: 0 })
  })

  suite.test('a send posted in SQD waits for RTS; one still held when the QP enters ERR flushes', async () => {
    const { a, b } = suite.env
    const { a: qa } = rawPair(suite.env)
    const mrA = register(a, 256)
    const mrB = register(b, 256)
    const sent = fill(mrA, 4, 0, 64)
    qa.modify({ state: 'SQD' })
    let settled = false
    const held = qa.write(mrA.slice(0, 64), mrB.region(0, 64))
    void held.then(() => (settled = true), () => (settled = true))
    await sleep(50)
    expect(settled, 'a WRITE posted in SQD is not executed').toBe(false)
    expect(mrB.bytes.every((v) => v === 0), 'nothing written while in SQD').toBe(true)
    qa.modify({ state: 'RTS' })
    expect((await outcomes([held]))[0]).toBe('SUCCESS')
    expectBytes(snapshot(mrB, 0, 64), sent, 'WRITE released by RTS')

    qa.modify({ state: 'SQD' })
    const flushed = outcomes([qa.write(mrA.slice(64, 64), mrB.region(64, 64))])
    await sleep(20)
    qa.modify({ state: 'ERR' })
    expect(await flushed).toEqual(['WR_FLUSH_ERR'])
    expect(mrB.bytes.subarray(64, 128).every((v) => v === 0), 'the flushed WRITE wrote nothing').toBe(true)
  })

  suite.test('raw WRITEs posted in SQD run on RTS as each was posted: own wrId, source and target (the WR object core hands over is reused)', async () => {
    const { a, b } = suite.env
    const { a: qa } = rawPair(suite.env)
    const mrA = register(a, 256)
    const mrB = register(b, 256)
    const sent = [1, 2, 3].map((k) => fill(mrA, 10 + k, k * 64, 64))
    qa.modify({ state: 'SQD' })
    for (const k of [1, 2, 3]) {
      const target = mrB.region(k * 64, 64)
      qa.postSend({ wrId: 100 + k, opcode: 'RDMA_WRITE', sgList: [mrA.slice(k * 64, 64)], remoteAddr: target.addr, rkey: target.rkey })
    }
    await sleep(20)
    qa.modify({ state: 'RTS' })
    const wcs = (await takeCompletions(qa.sendCq, 3)).map(({ wrId, status }) => ({ wrId, status }))
    expect(wcs).toEqual([101, 102, 103].map((wrId) => ({ wrId, status: 'SUCCESS' })))
    for (const k of [1, 2, 3]) expectBytes(snapshot(mrB, k * 64, 64), sent[k - 1]!, `WRITE ${k} posted in SQD`)
  })
}
