/**
 * Bounded duplicate handling (issue 22, probe 2) on the mock: a duplicate READ is read again only
 * when it matches one of the responder's saved READs (max_dest_rd_atomic of them), a duplicate
 * atomic is answered only from a saved result; anything else is dropped as 'unmatchedDuplicate'.
 */
import { describe, expect, it } from 'vitest'
import { Opcode } from '@rdma-session/core'
import { EMPTY_PAYLOAD, HEADER_BYTES, Packet } from '../src/packet.js'
import { completions, pair, sge, sleep, type Endpoint } from './harness.js'

const REGION = 1 << 20
const PROBES = 200

/** A request as the peer `from` would send it to `to`'s QP (the mock checks host and QPN only). */
function forged(from: Endpoint, to: Endpoint, opcode: Opcode, psn: number, length: number, remoteAddr: number, rkey: number): Packet {
  const p = new Packet(from.device.key, to.device.key, from.qp.qpn, to.qp.qpn, opcode, psn & 0xffffff, Math.max(1, Math.ceil(length / 1024)), length, EMPTY_PAYLOAD)
  p.remoteAddr = remoteAddr
  p.rkey = rkey
  return p
}

async function until(what: string, cond: () => boolean, seen: () => unknown, ms = 5000): Promise<void> {
  const end = performance.now() + ms
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(seen())}`)
    await sleep(2)
  }
}

describe('duplicate READ and atomic requests', () => {
  it('forged duplicate READs behind the expected PSN are dropped: at most 2x their bytes move; the real READ is byte-exact', async () => {
    const { fabric, a, b } = await pair({ mrBytes: REGION, mtu: 1024 })
    for (let i = 0; i < REGION; i++) b.buf[i] = (i * 7 + 3) & 0xff
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_READ', sgList: [sge(a, 0, 65536)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    expect(await completions(a.cq, 1)).toMatchObject([{ status: 'SUCCESS' }])
    const before = { bytes: fabric.stats.bytes, dropped: fabric.stats.dropped.unmatchedDuplicate }
    let probeBytes = 0
    for (let i = 0; i < PROBES; i++) {
      fabric.transmit(forged(a, b, Opcode.RDMA_READ, a.psn - 1 - i * 40_000, REGION, b.mr.addr, b.mr.rkey))
      probeBytes += HEADER_BYTES
    }
    a.qp.postSend({ wrId: 2, opcode: 'RDMA_READ', sgList: [sge(a, 0, REGION)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    expect(await completions(a.cq, 1)).toMatchObject([{ wrId: 2, status: 'SUCCESS' }])
    await until(`${PROBES} probes dropped`, () => fabric.stats.dropped.unmatchedDuplicate - before.dropped >= PROBES, () => fabric.stats.dropped)
    const moved = fabric.stats.bytes - before.bytes
    const extra = moved - REGION
    console.log(`[mock duplicate-read] ${PROBES} forged READs (${probeBytes} header bytes); ${moved} payload bytes moved for a ${REGION}-byte READ; extra ${extra}`)
    expect(fabric.stats.dropped.unmatchedDuplicate - before.dropped).toBe(PROBES)
    expect(extra).toBeLessThanOrEqual(2 * probeBytes)
    expect(Buffer.compare(Buffer.from(a.buf), Buffer.from(b.buf))).toBe(0)
    expect(a.qp.state).toBe('RTS')
  })

  it('a duplicate that matches a saved READ is read again; a duplicate atomic without a saved result is dropped, not executed', async () => {
    const { fabric, a, b } = await pair({ mtu: 1024 })
    const psn = a.psn
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_READ', sgList: [sge(a, 0, 4096)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    expect(await completions(a.cq, 1)).toMatchObject([{ status: 'SUCCESS' }])
    const bytes = fabric.stats.bytes
    fabric.transmit(forged(a, b, Opcode.RDMA_READ, psn, 4096, b.mr.addr, b.mr.rkey))
    await until('the matching duplicate to be answered', () => fabric.stats.bytes - bytes >= 4096, () => fabric.stats)
    const dropped = fabric.stats.dropped.unmatchedDuplicate
    const atomic = forged(a, b, Opcode.ATOMIC_FETCH_AND_ADD, psn - 3, 8, b.mr.addr, b.mr.rkey)
    atomic.payload = new Uint8Array(16).fill(1)
    fabric.transmit(atomic)
    fabric.transmit(forged(a, b, Opcode.RDMA_READ, psn, 4096, b.mr.addr + 8, b.mr.rkey))
    await until('the unmatched duplicates to be dropped', () => fabric.stats.dropped.unmatchedDuplicate - dropped >= 2, () => fabric.stats.dropped)
    expect(Buffer.from(b.buf).readBigUInt64LE(0)).toBe(0n)
  })
})
