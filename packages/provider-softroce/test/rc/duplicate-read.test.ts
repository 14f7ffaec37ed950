/**
 * Bounded duplicate handling (issue 22, probe 2): a duplicate READ is re-executed only when it
 * matches one of the responder's saved READ requests (max_dest_rd_atomic of them), so forged
 * duplicate READ requests with PSNs in the "behind" half of the PSN space move (almost) nothing,
 * and the legitimate transfer they were aimed at completes byte-exact. The responder here is
 * bound to its peer's address only (as toward kernel rxe or a NIC), so the forged packets from
 * another port reach the responder and its bound is what is tested.
 */
import dgram from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import type { QueuePair } from '@rdma-session/core'
import { encodeWithIcrc, type IpContext } from '../../src/wire/icrc.js'
import { RcOpcode } from '../../src/wire/opcodes.js'
import type { RocePacket } from '../../src/wire/packet.js'
import { packet } from '../fuzz/packet-forge.js'
import { ALL_ACCESS_BITS, openPair, pattern, register, sleep, TEST_TIMERS, type Pair } from './harness.js'

let pair: Pair | null = null
let sock: dgram.Socket | null = null
afterEach(async () => {
  sock?.close()
  sock = null
  await pair?.close()
  pair = null
})

const MTU = 1024
/** ACK timeouts of 1–4 s: on a loaded machine a 1 MiB READ must not be retried while its responses stream (each retry is a legitimate duplicate). */
const PATIENT = { timers: { ...TEST_TIMERS, ackTimeoutMinMs: 1000, ackTimeoutMaxMs: 4000 } }
const PROBES = 200
const REGION = 1 << 20

/** qa (on A) reads from qb (on B); qb accepts packets from A's address on any port (rxe-style binding). */
function connectAddressBound(p: Pair): { qa: QueuePair; qb: QueuePair } {
  const qa = p.a.createQp({ caps: { maxSendWr: 64 } })
  const qb = p.b.createQp({})
  for (const q of [qa, qb]) q.modify({ state: 'INIT', accessFlags: ALL_ACCESS_BITS, portNum: 1, pkeyIndex: 0 })
  qa.modify({ state: 'RTR', remote: p.b.endpoint, pathMtu: MTU, destQpn: qb.qpn, rqPsn: qb.localPsn, maxDestRdAtomic: 16, minRnrTimer: 1 })
  qb.modify({ state: 'RTR', remote: { address: p.a.endpoint.address, port: p.a.endpoint.port }, pathMtu: MTU, destQpn: qa.qpn, rqPsn: qa.localPsn, maxDestRdAtomic: 16, minRnrTimer: 1 })
  qa.modify({ state: 'RTS', sqPsn: qa.localPsn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
  qb.modify({ state: 'RTS', sqPsn: qb.localPsn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
  qa.remoteQpn = qb.qpn
  qb.remoteQpn = qa.qpn
  return { qa, qb }
}

async function forger(): Promise<(pkt: RocePacket, toPort: number) => number> {
  const s = dgram.createSocket('udp4')
  sock = s
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r))
  const port = s.address().port
  return (pkt, toPort) => {
    const ip: IpContext = { family: 4, src: '127.0.0.1', dst: '127.0.0.1', srcPort: port, dstPort: toPort, ipId: 0, df: true }
    const datagram = encodeWithIcrc(pkt, ip)
    s.send(datagram, toPort, '127.0.0.1')
    return datagram.length
  }
}

async function until(what: string, cond: () => boolean, seen: () => unknown, ms = 10_000): Promise<void> {
  const end = performance.now() + ms
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(seen())}`)
    await sleep(5)
  }
}

describe('duplicate READ requests', () => {
  it('forged duplicates behind the expected PSN move at most 2x their own bytes; the real READ is byte-exact', async () => {
    pair = await openPair(PATIENT)
    const { qa, qb } = connectAddressBound(pair)
    const mb = register(pair.b, REGION)
    mb.bytes.set(pattern(REGION, 22))
    const ma = register(pair.a, REGION)
    // A first READ: the responder now holds saved requests a duplicate could match.
    await qa.read(ma.slice(0, 256 * 1024), mb.region(0, 256 * 1024))
    const send = await forger()
    const cb = pair.db.counters
    const before = { sent: cb.bytesSent, unmatched: cb.drops.unmatchedDuplicate, answered: cb.duplicatesAnswered }
    // The probe: READ requests naming the whole region, PSNs spread over the half behind the requester's first PSN.
    let probeBytes = 0
    const reading = qa.read(ma.slice(), mb.region())
    for (let i = 0; i < PROBES; i++) {
      const psn = (qa.localPsn - 1 - i * 40_000) & 0xffffff
      probeBytes += send(packet(RcOpcode.RDMA_READ_REQUEST, qb.qpn, psn, { reth: { va: BigInt(mb.addr), rkey: mb.rkey, dmaLength: REGION } }, true), pair.db.info.port)
      if (i % 50 === 49) await sleep(1)
    }
    await reading
    await until(`all ${PROBES} probes to be handled`, () => cb.drops.unmatchedDuplicate - before.unmatched >= PROBES, () => cb.drops)
    await sleep(50)
    const sent = cb.bytesSent - before.sent
    const replays = cb.duplicatesAnswered - before.answered
    // What the real READ needs: its payload plus BTH/AETH/ICRC per response, ACKs; a real retry may re-send at most a window.
    const packets = REGION / MTU
    const legit = REGION + packets * 24 + 4096 + replays * REGION
    const extra = Math.max(0, sent - legit)
    console.log(`[duplicate-read] ${PROBES} forged READ requests, ${probeBytes} bytes; responder sent ${sent} bytes for a ${REGION}-byte READ (allowance ${legit}), extra ${extra}; unmatched ${cb.drops.unmatchedDuplicate - before.unmatched}, duplicates answered ${replays}`)
    expect(cb.drops.unmatchedDuplicate - before.unmatched, 'every forged duplicate is dropped and counted').toBeGreaterThanOrEqual(PROBES)
    expect(replays, 'duplicates re-executed: the real requester\'s retries at most').toBeLessThanOrEqual(7)
    expect(extra, 'response bytes beyond the real READ').toBeLessThanOrEqual(2 * probeBytes)
    expect(Buffer.compare(Buffer.from(ma.bytes), Buffer.from(mb.bytes)), 'the real READ is byte-exact').toBe(0)
    expect(qa.state).toBe('RTS')
    expect(qb.state).toBe('RTS')
  }, 60_000)

  it('a duplicate READ that matches a saved request consistently is read again (a lost response); inconsistent ones are dropped', async () => {
    pair = await openPair(PATIENT)
    const { qa, qb } = connectAddressBound(pair)
    const mb = register(pair.b, 8192)
    mb.bytes.set(pattern(8192, 5))
    const ma = register(pair.a, 8192)
    const first = qa.localPsn
    await qa.read(ma.slice(0, 8192), mb.region(0, 8192))
    const send = await forger()
    const cb = pair.db.counters
    const answered = cb.duplicatesAnswered
    // The retry a requester sends after losing responses 2.. of the 8-packet READ: PSN first+2, address +2 MTU.
    send(packet(RcOpcode.RDMA_READ_REQUEST, qb.qpn, (first + 2) & 0xffffff, { reth: { va: BigInt(mb.addr + 2 * MTU), rkey: mb.rkey, dmaLength: 6 * MTU } }, true), pair.db.info.port)
    await until('the matching duplicate to be answered', () => cb.duplicatesAnswered > answered, () => ({ answered: cb.duplicatesAnswered, drops: cb.drops }))
    // Inconsistent ones: the right PSN with another address, a longer range, another rkey.
    const unmatched = cb.drops.unmatchedDuplicate
    send(packet(RcOpcode.RDMA_READ_REQUEST, qb.qpn, (first + 2) & 0xffffff, { reth: { va: BigInt(mb.addr), rkey: mb.rkey, dmaLength: 6 * MTU } }, true), pair.db.info.port)
    send(packet(RcOpcode.RDMA_READ_REQUEST, qb.qpn, (first + 2) & 0xffffff, { reth: { va: BigInt(mb.addr + 2 * MTU), rkey: mb.rkey, dmaLength: 7 * MTU } }, true), pair.db.info.port)
    send(packet(RcOpcode.RDMA_READ_REQUEST, qb.qpn, (first + 2) & 0xffffff, { reth: { va: BigInt(mb.addr + 2 * MTU), rkey: (mb.rkey ^ 1) >>> 0, dmaLength: 6 * MTU } }, true), pair.db.info.port)
    await until('the inconsistent duplicates to be dropped', () => cb.drops.unmatchedDuplicate - unmatched >= 3, () => cb.drops)
    expect(cb.duplicatesAnswered - answered).toBe(1)
    expect(qa.state).toBe('RTS')
  })

  it('a duplicate atomic that matches no saved atomic is dropped, never executed', async () => {
    pair = await openPair(PATIENT)
    const { qa, qb } = connectAddressBound(pair)
    const mb = register(pair.b, 64)
    const send = await forger()
    const cb = pair.db.counters
    send(packet(RcOpcode.FETCH_ADD, qb.qpn, (qa.localPsn - 5) & 0xffffff, { atomicEth: { va: BigInt(mb.addr), rkey: mb.rkey, swapAdd: 7n, compare: 0n } }, true), pair.db.info.port)
    await until('the forged atomic to be dropped', () => cb.drops.unmatchedDuplicate >= 1, () => cb.drops)
    expect(Buffer.from(mb.bytes).readBigUInt64LE(0)).toBe(0n)
  })
})
