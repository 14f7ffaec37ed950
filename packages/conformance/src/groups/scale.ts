/** Scale: at least 1,000 QPs in one session, added by ID in batches, all usable, and all released on close. */
import { expect } from 'vitest'
import { atLeast, type Suite } from '../suite.js'
import { expectBytes, fill, openSession, peerOf, register, snapshot, ZERO_HANDLES } from '../fixtures.js'

const QPS = 1000
const BATCH = 250
const SAMPLE_EVERY = 50

export function scaleTests(suite: Suite): void {
  suite.test(`${QPS} QPs in one session: added in batches of ${BATCH}, a sample carries traffic, close leaks nothing`, async () => {
    const { a, b } = suite.env
    const spec = { caps: { maxSendWr: 8, maxRecvWr: 8 } }
    const batch = Array.from({ length: BATCH }, () => spec)
    const { session, peer } = await openSession(suite.env, { qps: batch })
    while (session.size < QPS) await a.sessions.addQps(session.id, batch, { remote: session.remote })

    expect(session.size).toBe(QPS)
    expect(peer.size).toBe(QPS)
    expect(new Set(session.qps.map((q) => q.qpn)).size, 'distinct QPNs').toBe(QPS)
    expect(a.handles).toMatchObject({ qps: QPS, sessions: 1 })
    expect(b.handles).toMatchObject({ qps: QPS, sessions: 1 })
    expect(a.sessions.query({ remote: session.remote })).toBe(session.id)
    expect(session.stats().qps).toHaveLength(QPS)
    expect(session.qps.every((q) => q.state === 'RTS'), 'all QPs in RTS').toBe(true)

    const sample = session.qps.filter((_, i) => i % SAMPLE_EVERY === 0 || i === QPS - 1)
    const slot = 256
    const mrA = register(a, sample.length * slot * 2)
    const mrB = register(b, sample.length * slot * 2)
    const written = sample.map((_, i) => fill(mrA, 1000 + i, i * slot, slot))
    const remote = sample.map((_, i) => fill(mrB, 2000 + i, (sample.length + i) * slot, slot))
    await Promise.all(sample.map((qp, i) => qp.write(mrA.slice(i * slot, slot), mrB.region(i * slot, slot))))
    await Promise.all(sample.map((qp, i) => qp.read(mrA.slice((sample.length + i) * slot, slot), mrB.region((sample.length + i) * slot, slot))))
    sample.forEach((qp, i) => {
      expectBytes(snapshot(mrB, i * slot, slot), written[i]!, `WRITE on QP #${session.qps.indexOf(qp)}`)
      expectBytes(snapshot(mrA, (sample.length + i) * slot, slot), remote[i]!, `READ on QP #${session.qps.indexOf(qp)}`)
    })
    const last = sample[sample.length - 1]!
    const recv = peerOf(peer, last).recv(mrB.slice(0, 16))
    await last.send(mrA.slice(0, 16))
    expect(await recv).toMatchObject({ byteLen: 16 })

    await session.close()
    mrA.deregister()
    mrB.deregister()
    expect(a.handles, 'handles on a after closing the session').toEqual(ZERO_HANDLES)
    expect(b.handles, 'handles on b after the peer closed the session').toEqual(ZERO_HANDLES)
  }, { requires: [atLeast('maxQps', QPS)], timeoutFactor: 4 })
}
