/**
 * The device send scheduler: a saturating bulk QP does not starve a latency QP
 * (its packets go out between the bulk QP's packets), and a rate-limited QP
 * stays near its rate.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { connect, openPair, register, type Pair } from './harness.js'

let pair: Pair | null = null
afterEach(async () => {
  await pair?.close()
  pair = null
})

describe('send scheduler', () => {
  it('a latency QP gets its SENDs through while a bulk QP saturates the device', async () => {
    pair = await openPair()
    const bulk = connect(pair, { mtu: 4096, caps: { maxSendWr: 64 }, qos: { class: 'bulk', weight: 1 } })
    const lat = connect(pair, { mtu: 4096, qos: { class: 'latency', weight: 4 } })
    const MiB = 1 << 20
    const ma = register(pair.a, 16 * MiB)
    const mb = register(pair.b, 16 * MiB)
    const bulkOps: Promise<unknown>[] = []
    for (let i = 0; i < 16; i++) bulkOps.push(bulk.qa.write(ma.slice(i * MiB, MiB), mb.region(i * MiB, MiB)))
    let bulkDone = 0
    const allBulk = Promise.all(bulkOps).then(() => (bulkDone = performance.now()))
    const latencies: number[] = []
    for (let i = 0; i < 10; i++) {
      const recv = lat.qb.recv(mb.slice(0, 64))
      const t0 = performance.now()
      await lat.qa.send(ma.slice(0, 8))
      await recv
      latencies.push(performance.now() - t0)
    }
    const latDone = performance.now()
    await allBulk
    expect(latDone, 'all 10 latency SENDs completed before the bulk transfer').toBeLessThan(bulkDone)
    latencies.sort((x, y) => x - y)
    const bulkMs = bulkDone - (latDone - latencies.reduce((s, x) => s + x, 0))
    // The median SEND round trip is a small fraction of the bulk transfer time.
    expect(latencies[5]!, `median latency ${latencies[5]!.toFixed(2)} ms vs bulk ${bulkMs.toFixed(0)} ms`).toBeLessThan(bulkMs / 10)
  })

  it('a rate-limited QP is held near its rate', async () => {
    pair = await openPair()
    const { qa } = connect(pair, { mtu: 4096, qos: { class: 'bulk', rateLimit: 4_000_000 } })
    const size = 1 << 20
    const ma = register(pair.a, size)
    const mb = register(pair.b, size)
    const t0 = performance.now()
    await qa.write(ma.slice(0, size), mb.region(0, size))
    const ms = performance.now() - t0
    // 1 MiB at 4 MB/s is ~262 ms; the token bucket allows a small burst.
    expect(ms).toBeGreaterThan(200)
    expect(ms).toBeLessThan(1500)
  })
})
