/** Sessions: create, query/list, add QPs by ID, the session error codes, remove, close and events. */
import { expect } from 'vitest'
import { isRdmaError, type QueuePair, type Session } from '@rdma-session/core'
import type { Suite } from '../suite.js'
import { expectBytes, expectCode, fill, nextEvent, openSession, outcomes, peerOf, register, snapshot } from '../fixtures.js'

const UNKNOWN_ID = '0123456789abcdef0123456789abcdef'
const OTHER_REMOTE = { address: '198.51.100.7', port: 4791 }

/** A WRITE on `qp` lands in the peer's memory. */
async function carries(suite: Suite, qp: QueuePair, seed: number): Promise<void> {
  const mrA = register(suite.env.a, 512)
  const mrB = register(suite.env.b, 512)
  const sent = fill(mrA, seed)
  await qp.write(mrA.slice(), mrB.region())
  expectBytes(snapshot(mrB), sent, `WRITE on QP ${qp.qpn}`)
  mrA.deregister()
  mrB.deregister()
}

function collect(session: Session, event: 'qp-added' | 'qp-removed'): QueuePair[] {
  const seen: QueuePair[] = []
  session.on(event, (qp: QueuePair) => seen.push(qp))
  return seen
}

export function sessionTests(suite: Suite): void {
  suite.test('create: both sides hold the session under one ID, with each other as remote and connected QPs', async () => {
    const { a, b } = suite.env
    const opened = nextEvent<Session>(b.sessions, 'session')
    const { session, peer } = await openSession(suite.env, { qps: [{}, {}] })
    expect(session.id).toMatch(/^[0-9a-f]{32}$/)
    expect((await opened).id, "the peer manager's 'session' event").toBe(session.id)
    expect(peer.id).toBe(session.id)
    expect(session.initiator).toBe(true)
    expect(peer.initiator).toBe(false)
    expect(session.remote).toEqual(b.endpoint)
    expect(peer.remote).toEqual(a.endpoint)
    expect(session.size).toBe(2)
    expect(peer.size).toBe(2)
    for (const qp of session.qps) {
      expect(qp.state).toBe('RTS')
      expect(peerOf(peer, qp).state).toBe('RTS')
      await carries(suite, qp, qp.qpn)
    }
  })

  suite.test('query and list return the session ID, by remote record or "address:port" string, on both sides', async () => {
    const { a, b } = suite.env
    expect(a.sessions.query({ remote: b.endpoint }), 'no session yet').toBeUndefined()
    const { session } = await openSession(suite.env)
    const { session: second } = await openSession(suite.env)
    expect(a.sessions.query({ remote: session.remote }), 'the oldest session to the remote').toBe(session.id)
    expect(a.sessions.query({ remote: session.remoteKey })).toBe(session.id)
    expect(a.sessions.list().sort()).toEqual([session.id, second.id].sort())
    expect(a.sessions.list({ remote: b.endpoint }).sort()).toEqual([session.id, second.id].sort())
    expect(a.sessions.list({ remote: OTHER_REMOTE })).toEqual([])
    expect(a.sessions.query({ remote: OTHER_REMOTE })).toBeUndefined()
    expect(b.sessions.query({ remote: a.endpoint })).toBe(session.id)
    expect(b.sessions.list().sort()).toEqual([session.id, second.id].sort())
    expect(a.sessions.get(session.id)).toBe(session)
  })

  suite.test('addQps by ID: one QP, then many in one request; both sides see them and they carry traffic', async () => {
    const { a } = suite.env
    const { session, peer } = await openSession(suite.env)
    const addedA = collect(session, 'qp-added')
    const addedB = collect(peer, 'qp-added')
    const [one, ...rest] = await a.sessions.addQps(session.id, [{}], { remote: session.remote })
    expect(rest).toHaveLength(0)
    expect(one!.state).toBe('RTS')
    expect(session.size).toBe(2)
    expect(peer.size).toBe(2)
    await carries(suite, one!, 1)

    const many = await a.sessions.addQps(session.id, Array.from({ length: 16 }, () => ({})))
    expect(many).toHaveLength(16)
    expect(new Set(many.map((q) => q.qpn)).size, 'distinct QPNs').toBe(16)
    expect(session.size).toBe(18)
    expect(peer.size).toBe(18)
    expect(addedA.map((q) => q.qpn)).toEqual([one!.qpn, ...many.map((q) => q.qpn)])
    expect(addedB.map((q) => q.remoteQpn), "the peer's 'qp-added' events").toEqual([one!.qpn, ...many.map((q) => q.qpn)])
    for (const qp of many) expect(peerOf(peer, qp).state).toBe('RTS')
    await carries(suite, many[15]!, 2)
    // The session object's addQps is the same operation.
    expect(await session.addQps([{}])).toHaveLength(1)
    expect(peer.size).toBe(19)
  })

  suite.test('an unknown session ID gives ERR_SESSION_NOT_FOUND', async () => {
    const { a } = suite.env
    await openSession(suite.env)
    const before = a.handles
    await expectCode(() => a.sessions.addQps(UNKNOWN_ID, [{}]), 'ERR_SESSION_NOT_FOUND')
    await expectCode(() => a.sessions.get(UNKNOWN_ID), 'ERR_SESSION_NOT_FOUND')
    expect(a.handles, 'nothing created').toEqual(before)
  })

  suite.test('a closed session: ERR_SESSION_NOT_FOUND by ID (it is forgotten), ERR_SESSION_CLOSED through the object', async () => {
    const { a, b } = suite.env
    const { session, peer } = await openSession(suite.env)
    await session.close()
    await expectCode(() => a.sessions.addQps(session.id, [{}]), 'ERR_SESSION_NOT_FOUND')
    await expectCode(() => b.sessions.addQps(session.id, [{}]), 'ERR_SESSION_NOT_FOUND')
    await expectCode(() => a.sessions.get(session.id), 'ERR_SESSION_NOT_FOUND')
    await expectCode(() => session.addQps([{}]), 'ERR_SESSION_CLOSED')
    await expectCode(() => peer.addQps([{}]), 'ERR_SESSION_CLOSED')
    await expectCode(() => session.rekey(), 'ERR_SESSION_CLOSED')
  })

  suite.test('a remote that does not match gives ERR_REMOTE_MISMATCH and creates nothing on either side', async () => {
    const { a, b } = suite.env
    const { session, peer } = await openSession(suite.env)
    const before = [a.handles, b.handles]
    const err = await expectCode(() => a.sessions.addQps(session.id, [{}], { remote: OTHER_REMOTE }), 'ERR_REMOTE_MISMATCH')
    expect(err.details).toMatchObject({ sessionId: session.id })
    await expectCode(() => a.sessions.addQps(session.id, [{}], { remote: '198.51.100.7:4791' }), 'ERR_REMOTE_MISMATCH')
    expect([a.handles, b.handles]).toEqual(before)
    expect(session.size).toBe(1)
    expect(peer.size).toBe(1)
  })

  suite.test('removeQp removes the QP on both sides: the peer gets qp-removed and its outstanding receives flush', async () => {
    const { a, b } = suite.env
    const { session, peer } = await openSession(suite.env, { qps: [{}, {}, {}] })
    const [q1, q2, q3] = session.qps as [QueuePair, QueuePair, QueuePair]
    const p1 = peerOf(peer, q1)
    const mrB = register(b, 256)
    const pending = outcomes([p1.recv(mrB.slice(0, 64))])
    const removedA = collect(session, 'qp-removed')
    const removedB = collect(peer, 'qp-removed')
    const before = [a.handles.qps, b.handles.qps]
    await session.removeQp(q1)
    expect(removedA).toEqual([q1])
    expect(removedB, "the peer's 'qp-removed'").toEqual([p1])
    expect(session.qps.map((q) => q.qpn)).toEqual([q2.qpn, q3.qpn])
    expect(peer.qps.map((q) => q.remoteQpn)).toEqual([q2.qpn, q3.qpn])
    expect(q1.closed).toBe(true)
    expect(p1.closed).toBe(true)
    expect(await pending).toEqual(['WR_FLUSH_ERR'])
    expect([a.handles.qps, b.handles.qps]).toEqual([before[0]! - 1, before[1]! - 1])
    await expectCode(() => session.qp(q1.qpn), 'ERR_QP_NOT_FOUND')
    // By QPN, from the peer's side this time.
    await peer.removeQp(peerOf(peer, q3).qpn)
    expect(session.qps.map((q) => q.qpn)).toEqual([q2.qpn])
    await carries(suite, q2, 3)
  })

  suite.test('close flushes outstanding WRs on both sides, both get closed, and both forget the session', async () => {
    const { a, b } = suite.env
    const { session, peer } = await openSession(suite.env, { qps: [{}, {}] })
    const mrA = register(a, 256)
    const mrB = register(b, 256)
    const pendingA = session.qps[0]!.recv(mrA.slice(0, 64))
    const pendingB = peer.qps[1]!.recv(mrB.slice(0, 64))
    const closedA = nextEvent<string>(session, 'closed')
    const closedB = nextEvent<string>(peer, 'closed')
    const forgotten = nextEvent<Session>(b.sessions, 'session-closed')
    const flushed = outcomes([pendingA, pendingB])
    await session.close('test over')
    expect(typeof (await closedA)).toBe('string')
    expect(await closedB, "the peer's close reason names the cause").toContain('test over')
    expect((await forgotten).id).toBe(session.id)
    expect(await flushed).toEqual(['WR_FLUSH_ERR', 'WR_FLUSH_ERR'])
    expect(session.closed).toBe(true)
    expect(peer.closed).toBe(true)
    expect(a.sessions.list()).toEqual([])
    expect(b.sessions.list()).toEqual([])
    expect(a.handles).toMatchObject({ qps: 0, sessions: 0 })
    expect(b.handles).toMatchObject({ qps: 0, sessions: 0 })
    await session.close()
  })

  suite.test("the peer can close too; the initiator gets 'closed'", async () => {
    const { a } = suite.env
    const { session, peer } = await openSession(suite.env)
    const closed = nextEvent<string>(session, 'closed')
    await peer.close()
    await closed
    expect(session.closed).toBe(true)
    expect(a.sessions.list()).toEqual([])
    expect(a.handles).toMatchObject({ qps: 0, sessions: 0 })
  })

  suite.test("a failed WR emits 'error' on its session with the QPN and status", async () => {
    const { session } = await openSession(suite.env)
    const qp = session.qps[0]!
    const mrA = register(suite.env.a, 64)
    const mrB = register(suite.env.b, 64)
    const event = nextEvent<Error & { qpn?: number; status?: string }>(session, 'error')
    const [outcome] = await outcomes([qp.write(mrA.slice(), { ...mrB.region(), rkey: (mrB.rkey ^ 0x00a5a5a5) >>> 0 })])
    expect(outcome).toBe('REM_ACCESS_ERR')
    const err = await event
    expect(isRdmaError(err, 'ERR_WORK_COMPLETION')).toBe(true)
    expect(err).toMatchObject({ qpn: qp.qpn, status: 'REM_ACCESS_ERR' })
  })

  suite.test('expose: a sub-range key lives as long as the exposure and its region; bad records are refused with a code', async () => {
    const { b } = suite.env
    const mr = register(b, 4096)
    const regions = b.handles.regions
    b.sessions.expose('whole', mr.region())
    expect(b.handles.regions, 'a whole region is exposed under its own key').toBe(regions)
    b.sessions.expose('part', mr.region(100, 200))
    expect(b.handles.regions, 'a sub-range gets a registration of its own').toBe(regions + 1)
    b.sessions.expose('part', mr.region(300, 10))
    expect(b.handles.regions, 'exposing a name again withdraws the previous key').toBe(regions + 1)
    expect(b.sessions.unexpose('part')).toBe(true)
    expect(b.sessions.unexpose('part')).toBe(false)
    expect(b.handles.regions).toBe(regions)
    b.sessions.expose('part', mr.region(0, 1))
    mr.deregister()
    expect(b.handles.regions, "the sub-range key goes with its region").toBe(regions - 1)
    const other = register(b, 64)
    await expectCode(() => b.sessions.expose('forged', { addr: other.addr, rkey: (other.rkey ^ 0x00a5a5a5) >>> 0, length: 8 }), 'ERR_INVALID_ARGUMENT')
    await expectCode(() => b.sessions.expose('bad', { addr: 'x', rkey: other.rkey, length: 8 } as never), 'ERR_INVALID_ARGUMENT')
    await expectCode(() => b.sessions.expose('', other.region()), 'ERR_INVALID_ARGUMENT')
    await expectCode(() => b.sessions.expose('past', { ...other.region(), length: 65 }), 'ERR_OUT_OF_BOUNDS')
    await expectCode(() => b.sessions.expose('empty', other.region(8, 0)), 'ERR_OUT_OF_BOUNDS')
    b.sessions.unexpose('whole')
    b.sessions.unexpose('part')
  })

  suite.test('stats count completed ops and bytes per QP and per session, and keep removed QPs in the total', async () => {
    const { session } = await openSession(suite.env, { qps: [{ qos: { class: 'x' } }, {}] })
    const [q1, q2] = session.qps as [QueuePair, QueuePair]
    const mrA = register(suite.env.a, 4096)
    const mrB = register(suite.env.b, 4096)
    await q1.write(mrA.slice(0, 1000), mrB.region(0, 1000))
    await q2.read(mrA.slice(0, 300), mrB.region(0, 300))
    const s = session.stats()
    expect(s.qps.find((q) => q.qpn === q1.qpn)).toMatchObject({ class: 'x', bytesSent: 1000, opsCompleted: 1, errors: 0 })
    expect(s.qps.find((q) => q.qpn === q2.qpn)).toMatchObject({ class: 'default', bytesReceived: 300, opsCompleted: 1 })
    expect(s.session).toMatchObject({ qps: 2, bytesSent: 1000, bytesReceived: 300, opsCompleted: 2 })
    await session.removeQp(q1)
    expect(session.stats().session).toMatchObject({ qps: 1, bytesSent: 1000, opsCompleted: 2 })
  })
}
