/**
 * Responses for PSNs never transmitted (issue 23, item 1): ACKs and NAKs injected on the fabric in
 * the peer's name are accepted only for PSNs the requester has sent; others are dropped as
 * `ghostAck`, change nothing, and the transfer completes byte-exact.
 */
import { seededRandom } from '@rdma-session/core'
import { describe, expect, it } from 'vitest'
import { EMPTY_PAYLOAD, Packet, type NakSyndrome } from '../src/packet.js'
import { psnAdd } from '@rdma-session/rc-engine'
import { completions, pair, sge, teardown, tick, type Pair } from './harness.js'

const MTU = 1024
/** Near the wrap: the WRs' PSNs cross from 0xffffff to 0. */
const PSN_A = 0xfffff0

/** A response from B's QP to A's, as B would send it. */
function forged(p: Pair, opcode: 'ACK' | 'NAK', psn: number, syndrome: NakSyndrome | null = null): Packet {
  const pkt = new Packet(p.b.device.key, p.a.device.key, p.b.qp.qpn, p.a.qp.qpn, opcode, psn, 1, 0, EMPTY_PAYLOAD)
  pkt.syndrome = syndrome
  return pkt
}

/** Posts signaled WRITEs `from` to `to` - 1 of `size` bytes (distinct bytes, distinct offsets) from A to B. */
function postWrites(p: Pair, from: number, to: number, size: number): void {
  for (let i = from; i < to; i++) {
    p.a.buf.fill((i * 7 + 1) & 0xff, i * size, (i + 1) * size)
    p.a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(p.a, i * size, size)], signaled: true, remoteAddr: p.b.mr.addr + i * size, rkey: p.b.mr.rkey })
  }
}

async function expectExactWrites(p: Pair, n: number, size: number): Promise<void> {
  const wcs = await completions(p.a.cq, n, 8000)
  expect(wcs.map((w) => [w.wrId, w.status])).toEqual(Array.from({ length: n }, (_, i) => [i, 'SUCCESS']))
  expect(Buffer.from(p.b.buf.subarray(0, n * size)).equals(Buffer.from(p.a.buf.subarray(0, n * size))), 'B holds every byte').toBe(true)
}

describe('responses for PSNs not transmitted', () => {
  it('a forged ACK for an unsent PSN changes nothing; the WRITEs complete byte-exact', async () => {
    const p = await pair({ psnA: PSN_A, mtu: MTU })
    const size = 4 * MTU
    // A's first WRITE is lost; the forged ACK overtakes it. It acknowledges the last PSN of WRs
    // posted only once it has arrived (before, 4 WRs of 4 PSNs were sent): an unsent PSN.
    p.fabric.faults.drop({ src: p.a.device.key, kind: 'request', count: 1 })
    let injected = 0
    p.fabric.on('packet', (r) => {
      if (r.src === p.a.device.key && r.kind === 'request' && injected++ === 0) p.fabric.transmit(forged(p, 'ACK', psnAdd(PSN_A, 8 * 4 - 1)))
    })
    postWrites(p, 0, 4, size)
    const deadline = performance.now() + 5000
    while (p.fabric.stats.delivered + p.fabric.stats.dropped.ghostAck === 0) {
      if (performance.now() > deadline) throw new Error(`the forged ACK was not delivered in 5 s: ${JSON.stringify(p.fabric.stats)}`)
      await tick()
    }
    postWrites(p, 4, 8, size)
    await expectExactWrites(p, 8, size)
    expect(p.fabric.stats.dropped.ghostAck).toBe(1)
    expect(p.a.device.metrics().labeled!['drops']!.values.ghostAck).toBe(1)
    await teardown(p.a, p.b)
  })

  it('NAKs forged at random PSNs past what was posted do not fail the transfer', async () => {
    const p = await pair({ psnA: PSN_A, mtu: MTU, mrBytes: 1 << 18 })
    const n = 64
    const size = 2 * MTU
    const rand = seededRandom(23)
    const kinds: NakSyndrome[] = ['PSN_SEQUENCE_ERROR', 'RNR', 'INVALID_REQUEST', 'REMOTE_ACCESS_ERROR', 'REMOTE_OPERATIONAL_ERROR']
    // Past every PSN the posted WRs use: never transmitted, whatever the timing.
    const end = psnAdd(PSN_A, n * 2)
    let forgedCount = 0
    p.fabric.on('packet', (r) => {
      if (r.src !== p.a.device.key || r.kind !== 'request') return
      for (let i = 0; i < 4; i++) {
        forgedCount++
        p.fabric.transmit(forged(p, 'NAK', psnAdd(end, Math.floor(rand() * 0x7fffff)), kinds[Math.floor(rand() * kinds.length)]!))
      }
    })
    postWrites(p, 0, n, size)
    await expectExactWrites(p, n, size)
    expect(p.fabric.stats.dropped.ghostAck).toBe(forgedCount)
    await teardown(p.a, p.b)
  })
})
