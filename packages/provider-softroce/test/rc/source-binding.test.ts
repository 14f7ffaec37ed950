/**
 * Source binding of plaintext QPs (issue 22, probe 1): between softroce peers a QP accepts packets
 * from its peer's address AND UDP port only, so a local process on the peer's address cannot inject
 * WRITEs, ACKs or NAKs from another port. Toward a remote that announced no fixed source port
 * (kernel rxe, NICs) the address is checked only.
 */
import dgram from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import { nakSyndrome, NakCode } from '../../src/wire/aeth.js'
import { encodeWithIcrc, type IpContext } from '../../src/wire/icrc.js'
import { RcOpcode } from '../../src/wire/opcodes.js'
import type { RocePacket } from '../../src/wire/packet.js'
import { packet } from '../fuzz/packet-forge.js'
import { ALL_ACCESS_BITS, connect, openPair, pattern, register, sleep, type Pair } from './harness.js'

let pair: Pair | null = null
let sock: dgram.Socket | null = null
afterEach(async () => {
  sock?.close()
  sock = null
  await pair?.close()
  pair = null
})

/** A UDP socket on the peer's own address (127.0.0.1), another port: the attacker on the same host. */
async function attacker(): Promise<{ send(pkt: RocePacket, toPort: number): void; port: number }> {
  const s = dgram.createSocket('udp4')
  sock = s
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r))
  const port = s.address().port
  return {
    port,
    send(pkt, toPort) {
      const ip: IpContext = { family: 4, src: '127.0.0.1', dst: '127.0.0.1', srcPort: port, dstPort: toPort, ipId: 0, df: true }
      s.send(encodeWithIcrc(pkt, ip), toPort, '127.0.0.1')
    },
  }
}

async function until(what: string, cond: () => boolean, seen: () => unknown, ms = 5000): Promise<void> {
  const end = performance.now() + ms
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(seen())}`)
    await sleep(5)
  }
}

describe('plaintext source binding between softroce peers', () => {
  it('the device announces its fixed source port, and the peer QP is bound to it', async () => {
    pair = await openPair()
    expect(pair.da.info.sourcePort).toBe(pair.da.info.port)
    expect(pair.a.endpoint.sourcePort).toBe(pair.da.info.port)
  })

  it('a WRITE with the right QPN, PSN and rkey from another port of the peer address is dropped and touches no memory', async () => {
    pair = await openPair()
    const { qa, qb } = connect(pair)
    const mb = register(pair.b, 4096)
    const evil = await attacker()
    const drops = (): number => pair!.db.counters.drops.wrongSource
    const forged = packet(RcOpcode.RDMA_WRITE_ONLY, qb.qpn, qa.localPsn, { reth: { va: BigInt(mb.addr), rkey: mb.rkey, dmaLength: 64 }, payload: Buffer.alloc(64, 0xee) }, true)
    evil.send(forged, pair.db.info.port)
    await until('the forged WRITE to be dropped as wrongSource', () => drops() >= 1, () => pair!.db.counters.drops)
    expect(mb.bytes.subarray(0, 64).every((b) => b === 0)).toBe(true)
    // The legitimate requester still owns the PSN: its WRITE lands byte-exact.
    const ma = register(pair.a, 4096)
    ma.bytes.set(pattern(4096, 7))
    await qa.write(ma.slice(0, 4096), mb.region(0, 4096))
    expect(Buffer.compare(mb.bytes, ma.bytes)).toBe(0)
  })

  it('a forged NAK from another port of the peer address is dropped; the QP stays usable', async () => {
    pair = await openPair()
    const { qa, qb } = connect(pair)
    const mb = register(pair.b, 4096)
    const ma = register(pair.a, 4096)
    const evil = await attacker()
    // The NAK names the PSN the next request takes: without source binding it would kill qa's WRITE.
    for (let i = 0; i < 4; i++) evil.send(packet(RcOpcode.ACKNOWLEDGE, qa.qpn, qa.localPsn + i, { aeth: { syndrome: nakSyndrome(NakCode.REMOTE_ACCESS_ERROR), msn: 1 } }), pair.da.info.port)
    await until('the forged NAKs to be dropped as wrongSource', () => pair!.da.counters.drops.wrongSource >= 4, () => pair!.da.counters.drops)
    ma.bytes.set(pattern(4096, 3))
    await qa.write(ma.slice(0, 4096), mb.region(0, 4096))
    expect(qa.state).toBe('RTS')
    expect(Buffer.compare(mb.bytes, ma.bytes)).toBe(0)
    void qb
  })
})

describe('toward a remote without a fixed source port (rxe, NICs)', () => {
  it('the address is what is checked: a packet from another port of the remote address is accepted', async () => {
    pair = await openPair()
    const qb = pair.b.createQp({})
    qb.modify({ state: 'INIT', accessFlags: ALL_ACCESS_BITS, portNum: 1, pkeyIndex: 0 })
    // As toward kernel rxe: the remote's RoCE port, no announced source port.
    const psn = 100
    qb.modify({ state: 'RTR', remote: { address: '127.0.0.1', port: 4791 }, pathMtu: 1024, destQpn: 0x123, rqPsn: psn, maxDestRdAtomic: 16, minRnrTimer: 1 })
    const mb = register(pair.b, 64)
    qb.postRecv({ wrId: 1, sgList: [mb.slice(0, 64).toSge()] })
    const rxe = await attacker()
    rxe.send(packet(RcOpcode.SEND_ONLY, qb.qpn, psn, { payload: Buffer.from('from a per-QP source port') }), pair.db.info.port)
    const wcs = await (async () => {
      const end = performance.now() + 5000
      for (;;) {
        const got = qb.recvCq.poll(1)
        if (got.length > 0) return got
        if (performance.now() > end) throw new Error(`no receive completion; drops ${JSON.stringify(pair!.db.counters.drops)}`)
        await sleep(5)
      }
    })()
    expect(wcs[0]!.status).toBe('SUCCESS')
    expect(pair.db.counters.drops.wrongSource).toBe(0)
    await qb.close()
  })
})
