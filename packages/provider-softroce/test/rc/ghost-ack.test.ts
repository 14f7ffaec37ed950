/**
 * Responses for PSNs never transmitted (issue 23, item 1): an on-host attacker sends ACKs and NAKs
 * over real UDP from the peer's address while a WRITE is in flight. The requester accepts only
 * PSNs it has transmitted: forged ones are dropped as `ghostAck`, and the WRITE completes byte-exact.
 */
import dgram from 'node:dgram'
import { seededRandom } from '@rdma-session/core'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeWithIcrc } from '../../src/wire/icrc.js'
import { RcOpcode } from '../../src/wire/opcodes.js'
import { psnAdd, psnDiff } from '@rdma-session/rc-engine'
import { attackedWrite, onPeerAddress } from './attacked-write.js'
import { openPair, type Pair } from './harness.js'

let pair: Pair | null = null
let attacker: dgram.Socket | null = null
afterEach(async () => {
  attacker?.close()
  attacker = null
  await pair?.close()
  pair = null
})

const SIZE = 8 << 20
const MTU = 1024
const PACKETS = SIZE / MTU
/** Near the wrap: the WRITE's PSNs cross from 0xffffff to 0. */
const PSN_A = 0xffe000
/** 8 MiB at 10 MB/s: the WRITE is in flight for ~0.8 s, long enough to be attacked. */
const RATE = 10_000_000
/** Forged PSNs stay this far ahead of what was sent: more than the WRITE can send (0.4 s at RATE) before a forged packet is read. */
const MARGIN = 4096
const WRITE = { size: SIZE, mtu: MTU, psnA: PSN_A, rate: RATE, seed: 23 } as const

/** A response packet for `psn` to QP `destQpn` of the device on `port`: an ACKNOWLEDGE (ACK, NAK or RNR NAK by `syndrome`) unless `opcode` says otherwise. */
function forgedAck(from: dgram.Socket, port: number, destQpn: number, psn: number, syndrome: number, opcode: number = RcOpcode.ACKNOWLEDGE): Buffer {
  const ip = { family: 4 as const, src: '127.0.0.1', dst: '127.0.0.1', srcPort: from.address().port, dstPort: port, ipId: 0 }
  const bth = { opcode, solicited: false, migReq: false, padCount: 0, tver: 0, pkey: 0xffff, fecn: false, becn: false, destQpn, ackReq: false, psn: psn & 0xffffff }
  const atomic = opcode === RcOpcode.ATOMIC_ACKNOWLEDGE ? { atomicAckEth: { origData: 0x4141414141414141n } } : {}
  const payload = opcode === RcOpcode.RDMA_READ_RESPONSE_ONLY ? new Uint8Array(8).fill(0x41) : new Uint8Array(0)
  return encodeWithIcrc({ bth, aeth: { syndrome, msn: 0 }, ...atomic, payload }, ip)
}

describe('responses for PSNs not transmitted', () => {
  it('a forged ACK for the last PSN of an in-flight WRITE changes nothing; the WRITE completes byte-exact', async () => {
    pair = await openPair()
    attacker = await onPeerAddress()
    const last = psnAdd(PSN_A, PACKETS - 1)
    const port = pair.da.info.port
    // Only while the last PSN is far ahead of anything sent (10 MB/s sends 4096 packets in 0.4 s):
    // once sent, an ACK for it is in the window and a plaintext RC peer cannot tell it is forged.
    const { exact, forged } = await attackedWrite(pair, attacker!, WRITE, (qpn, frontier) => (psnDiff(last, frontier) > MARGIN ? [forgedAck(attacker!, port, qpn, last, 0x1f)] : []))
    const drops = pair.da.counters.drops
    expect(exact, `B held every byte at completion (forged ${forged} ACKs, drops ${JSON.stringify(drops)})`).toBe(true)
    expect(drops.ghostAck, `forged ${forged} ACKs for PSN ${last}`).toBeGreaterThan(0)
  })

  it('a forged READ response and atomic ACK for unsent PSNs are dropped as ghostAck', async () => {
    pair = await openPair()
    attacker = await onPeerAddress()
    const port = pair.da.info.port
    let first = true
    const { exact } = await attackedWrite(pair, attacker!, WRITE, (qpn) => {
      if (!first) return []
      first = false
      // Past the WRITE's last PSN: never transmitted, whatever the timing.
      const psn = psnAdd(PSN_A, PACKETS + 100)
      return [forgedAck(attacker!, port, qpn, psn, 0x1f, RcOpcode.RDMA_READ_RESPONSE_ONLY), forgedAck(attacker!, port, qpn, psn, 0x1f, RcOpcode.ATOMIC_ACKNOWLEDGE)]
    })
    expect(exact).toBe(true)
    expect(pair.da.counters.drops.ghostAck, JSON.stringify(pair.da.counters.drops)).toBe(2)
  })

  it('NAKs forged at random PSNs beyond what was sent do not fail the WRITE', async () => {
    pair = await openPair()
    attacker = await onPeerAddress()
    const port = pair.da.info.port
    const rand = seededRandom(23)
    // Every NAK kind: sequence error, invalid request, remote access, remote operational, RNR.
    const syndromes = [0x60, 0x61, 0x62, 0x63, 0x20 | 14]
    const margin = MARGIN
    const { exact, forged } = await attackedWrite(pair, attacker!, WRITE, (qpn, frontier) =>
      Array.from({ length: 8 }, () => {
        // Half in the WRITE's own unsent PSNs (while there are some), half anywhere ahead.
        const tail = psnDiff(psnAdd(PSN_A, PACKETS), psnAdd(frontier, margin))
        const span = tail > 0 && rand() < 0.5 ? tail : 0x800000 - margin
        const psn = psnAdd(frontier, margin + Math.floor(rand() * span))
        return forgedAck(attacker!, port, qpn, psn, syndromes[Math.floor(rand() * syndromes.length)]!)
      }),
    )
    const c = pair.da.counters
    expect(exact, `B held every byte at completion (forged ${forged} NAKs, drops ${JSON.stringify(c.drops)})`).toBe(true)
    expect(c.drops.ghostAck, `forged ${forged} NAKs`).toBeGreaterThan(0)
  })
})
