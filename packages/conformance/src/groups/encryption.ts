/** Encrypted sessions: every op works through AEAD, and rekey keeps in-flight operations whole. */
import { expect } from 'vitest'
import type { QueuePair } from '@rdma-session/core'
import { lacks, needs, type Suite } from '../suite.js'
import { expectBytes, expectCode, fill, openSession, peerOf, readU64, register, snapshot, writeU64 } from '../fixtures.js'

export function encryptionTests(suite: Suite): void {
  suite.test('encrypted session: SEND, RDMA_WRITE, RDMA_READ (and atomics) are byte-exact', async () => {
    const { session, peer } = await openSession(suite.env, { params: { encryption: 'aes-256-gcm' }, qps: [{}] })
    const qa = session.qps[0]!
    const qb = peerOf(peer, qa)
    expect(qa.query().encrypted).toBe(true)
    expect(qb.query().encrypted).toBe(true)
    const mrA = register(suite.env.a, 1 << 17)
    const mrB = register(suite.env.b, 1 << 17)
    const sent = fill(mrA, 1, 0, 3000)
    const recv = qb.recv(mrB.slice(0, 4096))
    await qa.send(mrA.slice(0, 3000))
    expect(await recv).toMatchObject({ byteLen: 3000 })
    expectBytes(snapshot(mrB, 0, 3000), sent, 'encrypted SEND')
    const written = fill(mrA, 2, 0, 65536)
    await qa.write(mrA.slice(0, 65536), mrB.region(0, 65536))
    expectBytes(snapshot(mrB, 0, 65536), written, 'encrypted WRITE')
    const remote = fill(mrB, 3, 65536, 65536)
    await qa.read(mrA.slice(65536, 65536), mrB.region(65536, 65536))
    expectBytes(snapshot(mrA, 65536, 65536), remote, 'encrypted READ')
    if (suite.caps.atomics) {
      writeU64(mrB, 0, 41n)
      await qa.fetchAndAdd(mrA.slice(0, 8), mrB.region(0, 8), 1n)
      expect(readU64(mrB, 0)).toBe(42n)
      expect(readU64(mrA, 0)).toBe(41n)
    }
  }, { requires: [needs('encryption')] })

  suite.test('rekey: operations started before it complete successfully, later ones use the new epoch', async () => {
    const { session, peer } = await openSession(suite.env, { params: { encryption: 'aes-256-gcm' }, qps: [{}, {}, {}] })
    const qps = session.qps
    const chunk = 32 * 1024
    const n = 24
    const mrA = register(suite.env.a, n * chunk)
    const mrB = register(suite.env.b, n * chunk)
    const sent = fill(mrA, 4)
    const small = register(suite.env.b, 64 * n)
    const recvs = qps.map((qp, i) => peerOf(peer, qp).recv(small.slice(i * 64, 64)))
    const inFlight = [
      ...Array.from({ length: n }, (_, i) => qps[i % qps.length]!.write(mrA.slice(i * chunk, chunk), mrB.region(i * chunk, chunk))),
      ...qps.map((qp, i) => qp.send(mrA.slice(i * 64, 64))),
    ]
    const rekeyed = session.rekey()
    const results = await Promise.allSettled([...inFlight, ...recvs, rekeyed])
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))
    expect(failed, 'every in-flight op and the rekey succeed').toEqual([])
    expectBytes(snapshot(mrB), sent, 'bytes written across the rekey')
    expect(session.epoch).toBe(1)
    expect(peer.epoch).toBe(1)

    // Ops after the rekey, and a second rekey started by the peer.
    const after = fill(mrA, 5)
    await Promise.all(qps.map((qp: QueuePair, i) => qp.write(mrA.slice(i * chunk, chunk), mrB.region(i * chunk, chunk))))
    expectBytes(snapshot(mrB, 0, qps.length * chunk), after.subarray(0, qps.length * chunk), 'bytes written after the rekey')
    await peer.rekey()
    expect(session.epoch).toBe(2)
    expect(peer.epoch).toBe(2)
    const last = fill(mrB, 6, 0, chunk)
    await qps[0]!.read(mrA.slice(0, chunk), mrB.region(0, chunk))
    expectBytes(snapshot(mrA, 0, chunk), last, 'READ after the second rekey')
    for (const qp of qps) expect(qp.query().encrypted).toBe(true)
  }, { requires: [needs('encryption')] })

  suite.test('by default a session is encrypted on both sides (aes-256-gcm, required), and says so', async () => {
    const { session, peer } = await openSession(suite.env, { qps: [{}, {}] })
    expect(session.params.encryption).toEqual({ suite: 'aes-256-gcm', required: true })
    expect(peer.params.encryption).toEqual({ suite: 'aes-256-gcm', required: true })
    for (const qa of session.qps) {
      expect(qa.query().encrypted, `QP ${qa.qpn}`).toBe(true)
      expect(peerOf(peer, qa).query().encrypted, `peer QP of ${qa.qpn}`).toBe(true)
    }
    const added = await suite.env.a.sessions.addQps(session.id, [{}])
    expect(added[0]!.query().encrypted, 'a QP added by ID').toBe(true)
    const mrA = register(suite.env.a, 4096)
    const mrB = register(suite.env.b, 4096)
    const sent = fill(mrA, 9)
    await added[0]!.write(mrA.slice(), mrB.region())
    expectBytes(snapshot(mrB), sent, 'WRITE on a default (encrypted) session')
  }, { requires: [needs('encryption')] })

  suite.test("'preferred' is encrypted when both ends can; 'none' is plaintext", async () => {
    const preferred = await openSession(suite.env, { params: { encryption: 'preferred' } })
    expect(preferred.session.params.encryption).toEqual({ suite: 'aes-256-gcm', required: false })
    expect(preferred.session.qps[0]!.query().encrypted).toBe(true)
    const plain = await openSession(suite.env, { params: { encryption: 'none' } })
    expect(plain.session.params.encryption.suite).toBe('none')
    expect(plain.peer.params.encryption.suite).toBe('none')
    expect(plain.session.qps[0]!.query().encrypted).toBe(false)
  }, { requires: [needs('encryption')] })

  suite.test('rekey of an unencrypted session is refused with ERR_INVALID_ARGUMENT', async () => {
    const { session } = await openSession(suite.env, { params: { encryption: 'none' } })
    await expectCode(() => session.rekey(), 'ERR_INVALID_ARGUMENT')
    expect(session.epoch).toBe(0)
  })

  suite.test('without encryption: the default and a required encrypted session fail with ERR_ENCRYPTION_UNSUPPORTED; an optional one falls back to plaintext', async () => {
    const { a, b } = suite.env
    const refused = await expectCode(() => a.sessions.create({ peer: b }), 'ERR_ENCRYPTION_UNSUPPORTED')
    expect(refused.message, 'the error names the choices').toMatch(/'preferred'.*'none'/)
    await expectCode(() => a.sessions.create({ peer: b, params: { encryption: 'aes-256-gcm' } }), 'ERR_ENCRYPTION_UNSUPPORTED')
    expect(a.handles).toMatchObject({ qps: 0, sessions: 0 })
    expect(b.handles).toMatchObject({ qps: 0, sessions: 0 })
    const session = await a.sessions.create({ peer: b, params: { encryption: { suite: 'aes-256-gcm', required: false } } })
    expect(session.params.encryption.suite).toBe('none')
    expect(session.qps[0]!.query().encrypted).toBe(false)
    const preferred = await a.sessions.create({ peer: b, params: { encryption: 'preferred' } })
    expect(preferred.params.encryption.suite).toBe('none')
  }, { requires: [lacks('encryption')] })
}
