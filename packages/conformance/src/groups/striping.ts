/** Striping: session.write/read spread one large transfer over the QPs of a class and land byte-exact. */
import { expect } from 'vitest'
import { needs, type Suite } from '../suite.js'
import { expectBytes, fill, openSession, register, snapshot } from '../fixtures.js'
import type { QueuePair } from '@rdma-session/core'

const MiB = 1 << 20

async function stripedSession(suite: Suite) {
  const bulk = { qos: { class: 'bulk' } }
  const { session } = await openSession(suite.env, { qps: [{ qos: { class: 'latency' } }, bulk, bulk, bulk, bulk] })
  const bulkQpns = session.qpsOfClass('bulk').map((q) => q.qpn)
  expect(bulkQpns).toHaveLength(4)
  return { session, bulkQpns, latencyQpn: session.qpsOfClass('latency')[0]!.qpn }
}

export function stripingTests(suite: Suite): void {
  suite.test("session.write of 1 MiB over 4 'bulk' QPs lands byte-exact and uses more than one of them (and no other)", async () => {
    const { session, bulkQpns } = await stripedSession(suite)
    const mrA = register(suite.env.a, MiB)
    const mrB = register(suite.env.b, MiB + 4096)
    const data = fill(mrA, 1)
    mrB.bytes.fill(0x33)
    const result = await session.write(mrA.slice(), mrB.region(2048, MiB), { class: 'bulk' })
    expect(result).toMatchObject({ bytes: MiB, chunks: 16 })
    const used = Object.keys(result.chunksPerQp).map(Number)
    expect(used.length, 'QPs used').toBeGreaterThan(1)
    expect(used.every((qpn) => bulkQpns.includes(qpn)), 'only bulk QPs').toBe(true)
    expect(Object.values(result.chunksPerQp).reduce((x, y) => x + y, 0)).toBe(16)
    expectBytes(snapshot(mrB, 2048, MiB), data, 'striped WRITE')
    expect(mrB.bytes.subarray(0, 2048).every((v) => v === 0x33), 'bytes before untouched').toBe(true)
    expect(mrB.bytes.subarray(2048 + MiB).every((v) => v === 0x33), 'bytes after untouched').toBe(true)
  })

  suite.test("session.read of 1 MiB over 4 'bulk' QPs lands byte-exact and uses more than one of them", async () => {
    const { session, bulkQpns } = await stripedSession(suite)
    const mrA = register(suite.env.a, MiB)
    const mrB = register(suite.env.b, MiB)
    const data = fill(mrB, 2)
    const result = await session.read(mrA.slice(), mrB.region(), { class: 'bulk' })
    expect(result).toMatchObject({ bytes: MiB, chunks: 16 })
    const used = Object.keys(result.chunksPerQp).map(Number)
    expect(used.length, 'QPs used').toBeGreaterThan(1)
    expect(used.every((qpn) => bulkQpns.includes(qpn)), 'only bulk QPs').toBe(true)
    expectBytes(snapshot(mrA), data, 'striped READ')
  })

  suite.test('striping with an uneven chunk size over every QP of the session is still byte-exact', async () => {
    const { session } = await stripedSession(suite)
    const size = MiB + 123
    const mrA = register(suite.env.a, size)
    const mrB = register(suite.env.b, size)
    const data = fill(mrA, 3)
    const result = await session.write(mrA.slice(), mrB.region(), { chunkSize: 100_000 })
    expect(result).toMatchObject({ bytes: size, chunks: Math.ceil(size / 100_000) })
    expectBytes(snapshot(mrB), data, 'striped WRITE, uneven chunks')
    const back = register(suite.env.a, size)
    await session.read(back.slice(), mrB.region(), { chunkSize: 77_777, depthPerQp: 2 })
    expectBytes(snapshot(back), data, 'striped READ, uneven chunks')
  })

  suite.test('autoscale adds QPs while the class is saturated and slow, never past maxQps; striping uses them', async () => {
    const spec = { qos: { class: 'bulk', rateLimit: 1_000_000 }, caps: { maxSendWr: 4 } }
    const { session, peer } = await openSession(suite.env, { qps: [spec] })
    const scaler = session.autoscale({ maxQps: 3, below: { bytesPerSecond: 1e12 }, spec, intervalMs: 20 })
    const scaled: QueuePair[] = []
    scaler.on('scaled', (qps: QueuePair[]) => scaled.push(...qps))
    let most = 1
    scaler.on('scaled', () => (most = Math.max(most, session.qpsOfClass('bulk').length)))
    const mrA = register(suite.env.a, MiB)
    const mrB = register(suite.env.b, MiB)
    const data = fill(mrA, 4)
    const result = await session.write(mrA.slice(), mrB.region(), { class: 'bulk' })
    scaler.stop()
    expectBytes(snapshot(mrB), data, 'bytes written while scaling')
    expect(scaled.length, 'QPs added by the autoscaler').toBeGreaterThanOrEqual(1)
    expect(scaler.added).toBe(scaled.length)
    expect(most, 'never more than maxQps').toBeLessThanOrEqual(3)
    expect(session.qpsOfClass('bulk')).toHaveLength(1 + scaled.length)
    expect(peer.size, 'the peer has the added QPs').toBe(1 + scaled.length)
    expect(Object.keys(result.chunksPerQp).length, 'an added QP carried chunks').toBeGreaterThan(1)
  }, { requires: [needs('qosScheduling')], timeoutFactor: 2 })
}
