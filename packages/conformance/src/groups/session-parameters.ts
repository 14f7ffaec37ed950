/** Parameter inheritance (encapsulation, encryption) of QPs added by ID, and independent per-QP QoS. */
import { expect } from 'vitest'
import type { PathMtu, QosSpec, QueuePair, Session } from '@rdma-session/core'
import { atLeast, needs, type Suite } from '../suite.js'
import { commonMtu, expectBytes, fill, openSession, peerOf, register, snapshot } from '../fixtures.js'

/** Every QP of both views reports the session's encapsulation and encryption through query(). */
function expectInherited(session: Session, peer: Session, encrypted: boolean): void {
  const { mtu, dscp, ecn, hopLimit } = session.params.encapsulation
  for (const qp of session.qps) {
    for (const [side, q] of [['initiator', qp], ['peer', peerOf(peer, qp)]] as const) {
      const attrs = q.query()
      expect(attrs.pathMtu, `${side} QP ${q.qpn} pathMtu`).toBe(mtu)
      expect(attrs.encapsulation, `${side} QP ${q.qpn} encapsulation`).toMatchObject({ dscp, ecn, hopLimit })
      expect(attrs.encrypted, `${side} QP ${q.qpn} encrypted`).toBe(encrypted)
    }
  }
}

const QOS: readonly QosSpec[] = [
  { class: 'latency', serviceLevel: 3, weight: 10 },
  { class: 'bulk', serviceLevel: 1, weight: 100, rateLimit: '2Gbps', trafficClass: 0x28 },
  { class: 'scavenger', serviceLevel: 0, weight: 1, rateLimit: 1_000_000 },
]

function expectQos(qp: QueuePair, spec: QosSpec, dscpEcn: number): void {
  expect(qp.qos, `QoS of QP ${qp.qpn}`).toMatchObject({
    className: spec.class,
    serviceLevel: spec.serviceLevel,
    weight: spec.weight,
    trafficClass: spec.trafficClass ?? dscpEcn,
    rateLimitBps: spec.rateLimit === '2Gbps' ? 2e9 / 8 : (spec.rateLimit ?? 0),
  })
}

export function sessionParameterTests(suite: Suite): void {
  suite.test('QPs added by ID inherit the session encapsulation on both sides (MTU, DSCP/ECN, hop limit)', async () => {
    const mtu = commonMtu(suite.env)
    const params = { encapsulation: { mtu, dscp: 26, ecn: 1, hopLimit: 32 } }
    const { session, peer } = await openSession(suite.env, { params, qps: [{}] })
    expect(session.params).toEqual(peer.params)
    expect(session.params.encapsulation).toMatchObject(params.encapsulation)
    const encrypted = suite.caps.encryption
    expect(session.params.encryption.suite, 'the default: encrypted where the provider can').toBe(encrypted ? 'aes-256-gcm' : 'none')
    await suite.env.a.sessions.addQps(session.id, [{}, {}, {}], { remote: session.remote })
    expect(peer.size).toBe(4)
    expectInherited(session, peer, encrypted)
    for (const qp of session.qps) expect(qp.qos.trafficClass, 'default traffic class = DSCP << 2 | ECN').toBe((26 << 2) | 1)
  })

  suite.test('the session MTU is the largest both sides support, at most what was asked', async () => {
    const { a, b } = suite.env
    const { session, peer } = await openSession(suite.env, { params: { encapsulation: { mtu: 4096 } } })
    const expected = Math.min(4096, a.capabilities.maxMtu, b.capabilities.maxMtu) as PathMtu
    expect(session.params.encapsulation.mtu).toBe(expected)
    expect(peer.params.encapsulation.mtu).toBe(expected)
    const [added] = await session.addQps([{}])
    expect(added!.query().pathMtu).toBe(expected)
    expect(peerOf(peer, added!).query().pathMtu).toBe(expected)
  })

  suite.test("an encrypted session's QPs, first and added, are encrypted on both sides and carry data", async () => {
    const { session, peer } = await openSession(suite.env, { params: { encryption: 'aes-256-gcm', encapsulation: { dscp: 10 } }, qps: [{}] })
    expect(session.params.encryption.suite).toBe('aes-256-gcm')
    expect(peer.params).toEqual(session.params)
    const added = await suite.env.a.sessions.addQps(session.id, [{}, { qos: { class: 'bulk' } }], { remote: session.remote })
    expectInherited(session, peer, true)
    const mrA = register(suite.env.a, 4096)
    const mrB = register(suite.env.b, 4096)
    for (const [i, qp] of added.entries()) {
      const sent = fill(mrA, 50 + i)
      await qp.write(mrA.slice(), mrB.region())
      expectBytes(snapshot(mrB), sent, `WRITE on added encrypted QP ${qp.qpn}`)
      const recv = peerOf(peer, qp).recv(mrB.slice(0, 100))
      await qp.send(mrA.slice(0, 100))
      expect(await recv).toMatchObject({ byteLen: 100 })
      expectBytes(snapshot(mrB, 0, 100), snapshot(mrA, 0, 100), `SEND on added encrypted QP ${qp.qpn}`)
    }
  }, { requires: [needs('encryption')] })

  suite.test('each QP keeps its own QoS (class, service level, traffic class, weight, rate) on both sides', async () => {
    const dscpEcn = 18 << 2
    const { session, peer } = await openSession(suite.env, { params: { encapsulation: { dscp: 18 } }, qps: [{ qos: QOS[0]! }] })
    await suite.env.a.sessions.addQps(session.id, [{ qos: QOS[1]! }, { qos: QOS[2]! }], { remote: session.remote })
    const [lat, bulk, scav] = session.qps as [QueuePair, QueuePair, QueuePair]
    expectQos(lat, QOS[0]!, dscpEcn)
    expectQos(bulk, QOS[1]!, dscpEcn)
    expectQos(scav, QOS[2]!, dscpEcn)
    expectQos(peerOf(peer, lat), QOS[0]!, dscpEcn)
    expectQos(peerOf(peer, bulk), QOS[1]!, dscpEcn)
    expectQos(peerOf(peer, scav), QOS[2]!, dscpEcn)
    expect(session.qpsOfClass('bulk')).toEqual([bulk])
    expect(session.stats().qps.map((q) => q.class)).toEqual(['latency', 'bulk', 'scavenger'])
    // Adding a QP changes nobody else's QoS.
    await session.addQps([{ qos: { class: 'bulk', serviceLevel: 7, weight: 500 } }])
    expectQos(lat, QOS[0]!, dscpEcn)
    expectQos(bulk, QOS[1]!, dscpEcn)
    expect(session.qpsOfClass('bulk')).toHaveLength(2)
  })

  suite.test('per-QP QoS is enforced independently: a rate-limited bulk QP does not hold back a latency QP', async () => {
    const rate = 2_000_000
    const { session, peer } = await openSession(suite.env, { qps: [{ qos: { class: 'latency', serviceLevel: 3, weight: 100 } }, { qos: { class: 'bulk', rateLimit: rate, weight: 1 } }] })
    const [lat, bulk] = session.qps as [QueuePair, QueuePair]
    const size = 512 * 1024
    const mrA = register(suite.env.a, size)
    const mrB = register(suite.env.b, size)
    const sent = fill(mrA, 60)
    const started = performance.now()
    let bulkDone = 0
    const bulkWrites = Array.from({ length: 8 }, (_, i) => bulk.write(mrA.slice(i * 65536, 65536), mrB.region(i * 65536, 65536)))
    const allBulk = Promise.all(bulkWrites).then(() => (bulkDone = performance.now() - started))
    const peerLat = peerOf(peer, lat)
    const small = register(suite.env.b, 64)
    for (let i = 0; i < 20; i++) {
      const recv = peerLat.recv(small.slice())
      await lat.send(new Uint8Array([i]))
      await recv
    }
    const latencyDone = performance.now() - started
    await allBulk
    expect(latencyDone, 'latency QP finished 20 round trips before the bulk transfer').toBeLessThan(bulkDone)
    expect(bulkDone, `512 KiB at ${rate} B/s takes about ${Math.round((size / rate) * 1000)} ms`).toBeGreaterThan((size / rate) * 1000 * 0.5)
    expectBytes(snapshot(mrB), sent, 'bulk bytes')
  }, { requires: [needs('qosScheduling'), atLeast('maxInline', 1)], timeoutFactor: 2 })

  suite.test("a QP limited to '80Mb/s' (megabits) moves about 10 MB/s, not 80", async () => {
    // Plaintext: the limit is what is measured, and sealing every packet on a loaded 2-core host
    // could make the CPU, not the limit, set the pace.
    const { session } = await openSession(suite.env, { params: { encryption: 'none', encapsulation: { mtu: commonMtu(suite.env) } }, qps: [{ qos: { rateLimit: '80Mb/s' } }] })
    const [qp] = session.qps as [QueuePair]
    expect(qp.qos.rateLimitBps).toBe(10_000_000)
    const chunk = 64 * 1024
    const chunks = 64 // 4 MiB: ~420 ms at 10 MB/s, so the token bucket's small initial burst is noise
    const mrA = register(suite.env.a, 16 * chunk)
    const mrB = register(suite.env.b, 16 * chunk)
    const sent = fill(mrA, 70)
    // From before the first post to the last completion: the QP is backlogged throughout, and a busy
    // machine can only make the interval longer (the rate lower), never shorter.
    const started = performance.now()
    await Promise.all(Array.from({ length: chunks }, (_, i) => qp.write(mrA.slice((i % 16) * chunk, chunk), mrB.region((i % 16) * chunk, chunk))))
    const seconds = (performance.now() - started) / 1000
    const megabytesPerSecond = (chunks * chunk) / seconds / 1e6
    const observed = `${(chunks * chunk / 2 ** 20).toFixed(0)} MiB in ${(seconds * 1000).toFixed(0)} ms = ${megabytesPerSecond.toFixed(2)} MB/s`
    console.info(`[conformance:${suite.provider}] rate limit 80Mb/s: ${observed}`)
    // 10 MB/s of wire bytes (headers included, so a little less payload). Above: the bucket allows
    // burst + rate x time, so only a looser limit passes 12.5 (megabits read as megabytes: 80).
    // Below: on a loaded host the CPU, not the limit, may set the pace (softroce moved 2.0 MB/s at
    // load 10 on 2 cores, the process waiting for a core most of the time, its 1 ms timers firing
    // 4-9 ms late); 1.6 still tells 10 from 1.25 MB/s (a limit 8x too strict).
    expect(megabytesPerSecond, observed).toBeLessThan(12.5)
    expect(megabytesPerSecond, observed).toBeGreaterThan(1.6)
    expectBytes(snapshot(mrB), sent, 'rate-limited bytes')
  }, { requires: [needs('qosScheduling')], timeoutFactor: 2 })
}
