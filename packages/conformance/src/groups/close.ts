/** Close: every handle is released, closing the context closes everything, and nothing works afterwards. */
import { expect } from 'vitest'
import type { Suite } from '../suite.js'
import { expectBytes, expectCode, fill, nextEvent, openSession, outcomes, rawPair, sessionOptions, register, sleep, snapshot, takeCompletions } from '../fixtures.js'

export function closeTests(suite: Suite): void {
  suite.test('the provider takes sessions, QPs, CQs and regions closed one by one (children first), then its devices close', async () => {
    const { a, b } = suite.env
    const { session } = await openSession(suite.env, { qps: [{}, {}] })
    const raw = rawPair(suite.env)
    const cq = a.createCq({ depth: 64 })
    const shared = a.createQp({ sendCq: cq, recvCq: cq })
    const mrA = register(a, 4096)
    const mrB = register(b, 4096)
    await session.close()
    await raw.a.close()
    await raw.b.close()
    await shared.close()
    a.destroyCq(cq)
    mrA.deregister()
    mrB.deregister()
    // What the provider still holds is its own business: the target's teardown checks it. Here: no destroy was refused.
    await a.close()
    await b.close()
  })

  suite.test('closing a context closes everything it owns, flushes outstanding WRs and closes the peer side of its sessions', async () => {
    const { a, b } = suite.env
    const { session, peer } = await openSession(suite.env, { qps: [{}, {}] })
    const raw = rawPair(suite.env)
    const mrA = register(a, 4096)
    const pending = outcomes([session.qps[0]!.recv(mrA.slice(0, 64)), raw.a.recv(mrA.slice(64, 64))])
    a.createCq()
    const peerClosed = nextEvent(peer, 'closed')
    await a.close()
    expect(await pending).toEqual(['WR_FLUSH_ERR', 'WR_FLUSH_ERR'])
    await peerClosed
    expect(session.closed).toBe(true)
    expect(b.sessions.list()).toEqual([])
    await a.close()
  })

  suite.test('operations after close fail with ERR_CLOSED or ERR_SESSION_CLOSED', async () => {
    const { a, b } = suite.env
    const { session } = await openSession(suite.env)
    const qp = session.qps[0]!
    const mrA = register(a, 64)
    const mrB = register(b, 64)
    const region = mrB.region()
    await session.close()
    await expectCode(() => session.write(mrA.slice(), region), 'ERR_SESSION_CLOSED')
    await expectCode(() => session.addQps([{}]), 'ERR_SESSION_CLOSED')
    await expectCode(() => session.removeQp(qp), 'ERR_SESSION_CLOSED')
    await expectCode(() => qp.write(mrA.slice(), region), 'ERR_CLOSED')
    await expectCode(() => qp.recv(mrA.slice()), 'ERR_CLOSED')
    await expectCode(() => qp.modify({ state: 'RESET' }), 'ERR_CLOSED')
    mrA.deregister()
    await expectCode(() => mrA.region(), 'ERR_CLOSED')
    await a.close()
    await expectCode(() => a.registerMemory(Buffer.alloc(64)), 'ERR_CLOSED')
    await expectCode(() => a.createCq(), 'ERR_CLOSED')
    await expectCode(() => a.createQp(), 'ERR_CLOSED')
    await expectCode(() => a.sessions.create(sessionOptions(suite.env)), 'ERR_CLOSED')
  })

  suite.test('closing a CQ ends iteration over it; a QP posting to a closed context fails', async () => {
    const { a } = suite.env
    const raw = rawPair(suite.env)
    const mrA = register(a, 64)
    const mrB = register(suite.env.b, 64)
    raw.a.postSend({ wrId: 9, opcode: 'RDMA_WRITE', sgList: [mrA.slice()], remoteAddr: mrB.addr, rkey: mrB.rkey })
    const seen: number[] = []
    for await (const wc of raw.a.sendCq) {
      seen.push(wc.wrId)
      break
    }
    expect(seen).toEqual([9])
    const iteration = (async () => {
      const got: number[] = []
      for await (const wc of raw.a.sendCq) got.push(wc.wrId)
      return got
    })()
    await a.close()
    expect(await iteration, 'iteration ends when the CQ closes').toEqual([])
    await expectCode(() => raw.a.postSend({ opcode: 'SEND', sgList: [] }), 'ERR_CLOSED')
  })

  suite.test('close() is prompt after a trailing unsignaled WR that completed silently (raw verbs)', async () => {
    const raw = rawPair(suite.env)
    const mrA = register(suite.env.a, 128)
    const mrB = register(suite.env.b, 128)
    const data = fill(mrA, 1)
    raw.a.postSend([
      { wrId: 1, opcode: 'RDMA_WRITE', sgList: [mrA.slice(0, 64)], remoteAddr: mrB.region(0).addr, rkey: mrB.rkey, signaled: true },
      { wrId: 2, opcode: 'RDMA_WRITE', sgList: [mrA.slice(64, 64)], remoteAddr: mrB.region(64).addr, rkey: mrB.rkey, signaled: false },
    ])
    expect((await takeCompletions(raw.a.sendCq, 1))[0]).toMatchObject({ wrId: 1, status: 'SUCCESS' })
    // The unsignaled WRITE has no completion: wait (deadline) for its bytes, the outcome itself.
    const deadline = performance.now() + 5000
    while (snapshot(mrB).some((v, i) => v !== data[i]) && performance.now() < deadline) await sleep(5)
    expectBytes(snapshot(mrB), data, 'both WRITEs landed')
    const started = performance.now()
    await raw.a.close()
    // The bug this catches waits for core's 5 s settle timeout; half of it leaves a slow (TCG) guest or a loaded host room.
    expect(performance.now() - started, 'close() waited for a completion that never comes (core gives up after 5 s)').toBeLessThan(2500)
  })
}
