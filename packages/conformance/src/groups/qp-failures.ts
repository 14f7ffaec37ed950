/** Failed QPs in a session: both ends drop the pair (no QP left in RTS facing one in ERR), the initiator replaces it, stats and events say so. */
import { expect } from 'vitest'
import type { QpFailure, QueuePair, Session } from '@rdma-session/core'
import { needs, type Suite } from '../suite.js'
import { faultsOf } from '../target.js'
import { expectStatus, openSession, peerOf, register, until } from '../fixtures.js'

/** The recorded reason: the failed WR's status, or the provider's fatal event if that came first (it names the retries). */
const RETRIES = /RETRY_EXC_ERR|retr(y|ies)/i

/** What the two ends hold, for failure messages. */
function view(session: Session, peer: Session): unknown {
  const side = (s: Session): unknown => ({ qps: s.qps.map((q) => [q.qpn, q.state]), failures: s.stats().failures })
  return { initiator: side(session), peer: side(peer) }
}

/** Fails the session's only QP: the peer's host stops answering, and a WRITE exhausts its retries. */
async function failOnlyQp(suite: Suite, session: Session): Promise<QueuePair> {
  const qp = session.qps[0]!
  const mrA = register(suite.env.a, 64)
  const mrB = register(suite.env.b, 64)
  await faultsOf(suite.env, suite.provider).killHost(suite.env.b)
  await expectStatus(() => qp.write(mrA.slice(), mrB.region()), 'RETRY_EXC_ERR')
  return qp
}

export function qpFailureTests(suite: Suite): void {
  suite.test("a QP that exhausts its retries is dropped at both ends and replaced by the initiator; stats and 'qp-failed'/'qp-replaced' say so", async () => {
    const { session, peer } = await openSession(suite.env, { qps: [{ qos: { class: 'bulk' } }] })
    const failedEvents: QpFailure[] = []
    const peerEvents: QpFailure[] = []
    session.on('qp-failed', (f: QpFailure) => failedEvents.push(f))
    peer.on('qp-failed', (f: QpFailure) => peerEvents.push(f))
    const peerEnd = peerOf(peer, session.qps[0]!)
    const failed = await failOnlyQp(suite, session)
    await until('the failed pair replaced at both ends', () => session.stats().session.qpsReplaced === 1 && peer.size === 1 && !peer.qps.includes(peerEnd), () => view(session, peer), 8000)
    const [fresh] = session.qps
    expect(fresh!.qpn).not.toBe(failed.qpn)
    expect(fresh!.qos.className, 'the replacement has the failed QP\'s spec').toBe('bulk')
    expect(fresh!.state).toBe('RTS')
    expect(peerOf(peer, fresh!).state).toBe('RTS')
    expect(session.stats().failures).toEqual([expect.objectContaining({ qpn: failed.qpn, remoteQpn: peerEnd.qpn, class: 'bulk', reason: expect.stringMatching(RETRIES), detectedBy: 'local', action: 'replaced', replacedBy: fresh!.qpn })])
    expect(session.stats().session).toMatchObject({ qps: 1, qpsFailed: 1, qpsReplaced: 1 })
    expect(failedEvents.map((f) => f.qpn)).toEqual([failed.qpn])
    expect(peer.stats().failures).toEqual([expect.objectContaining({ qpn: peerEnd.qpn, remoteQpn: failed.qpn, reason: expect.stringMatching(/^peer: /), detectedBy: 'peer', action: 'removed' })])
    expect(peerEvents).toHaveLength(1)
  }, { requires: [needs('faultInjection')] })

  suite.test("with qpFailurePolicy 'remove' a failed QP is dropped at both ends and not replaced", async () => {
    const { session, peer } = await openSession(suite.env, { qps: [{}] })
    session.qpFailurePolicy = 'remove'
    const failed = await failOnlyQp(suite, session)
    await until('the failed pair removed at both ends', () => session.size === 0 && peer.size === 0 && session.stats().failures[0]?.action === 'removed', () => view(session, peer), 8000)
    expect(session.stats().session).toMatchObject({ qps: 0, qpsFailed: 1, qpsReplaced: 0 })
    expect(session.stats().failures[0]).toMatchObject({ qpn: failed.qpn, detectedBy: 'local', action: 'removed' })
    expect(peer.stats().failures[0]).toMatchObject({ detectedBy: 'peer', action: 'removed' })
    expect(session.closed || peer.closed, 'the session stays open').toBe(false)
    expect(() => { session.qpFailurePolicy = 'keep' as never }).toThrow(/qpFailurePolicy/)
  }, { requires: [needs('faultInjection')] })
}
