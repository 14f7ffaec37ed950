/**
 * Fuzz helper: a scripted RoCEv2 peer that the fuzz QPs of the device under test are connected
 * to. It keeps a model of each QP (the PSN the device expects next, the device's own requests it
 * owes responses to) from the device's ACKs, NAKs and requests, so most of its packets are valid
 * and in sequence and reach deep into the responder and requester; a share of them is mutated
 * (packet-forge.ts) and re-signed. It also sends packets from an off-path address, to unknown
 * QPNs, random garbage and packets with a bad ICRC, and says for each packet at which stage the
 * device must stop it (so the test can check every drop counter exactly).
 */
import { IcrcChecker } from '../../src/rc/icrc-check.js'
import { MAX_DATAGRAM_BYTES } from '../../src/socket/native-datagram.js'
import type { IpContext } from '../../src/wire/icrc.js'
import { OPCODE_TABLE, RcOpcode } from '../../src/wire/opcodes.js'
import { decodePacket, peekDestQpn } from '../../src/wire/packet.js'
import { psnAdd, psnDiff } from '@rdma-session/rc-engine'
import type { Rand } from '../wire/random-packets.js'
import { encodePacket, mutate, packet, sign, type Targets } from './packet-forge.js'

/** Where the device must stop a packet: before any QP sees it, or 'qp' (parsed and handed to a QP, or dropped there). */
export type Stage = 'short' | 'badIcrc' | 'unknownQpn' | 'wrongSource' | 'qp'

export interface Region {
  readonly addr: number
  readonly rkey: number
  readonly length: number
}

export interface ForgedPacket {
  readonly datagram: Buffer
  readonly via: 'peer' | 'offPath'
  readonly stage: Stage
  readonly kind: string
  readonly mutations: readonly string[]
}

interface QpModel {
  readonly dQpn: number
  readonly peerQpn: number
  /** The PSN of this peer's next request (its idea of the device's expected PSN). */
  nextPsn: number
  /** Bodies of the rest of the message being sent. */
  pending: Buffer[]
  /** Response bodies owed to the device's requester. */
  responses: Buffer[]
  /** Request PSNs of the device already answered. */
  answered: Set<number>
  /** The device's latest request PSN. */
  lastDevicePsn: number
  msn: number
}

export interface FuzzPeerOptions {
  readonly rand: Rand
  readonly pmtu: number
  /** IP contexts (ICRC) of datagrams from the peer socket and the off-path socket to the device. */
  readonly ipPeer: IpContext
  readonly ipOffPath: IpContext
  /** The regions of the device the peer knows: read-write, read-only, atomics; plus all for mutations. */
  readonly rw: Region
  readonly ro: Region
  readonly atomic: Region
  readonly targets: Targets
  /** Every QPN the device has (to predict unknownQpn drops). */
  readonly deviceQpns: () => ReadonlySet<number>
  /** QPNs of the device's real pair (connected to another stack; fuzzed only with random PSNs). */
  readonly realQpns: readonly number[]
  /** Bytes that must never leave the device (the canaries around its regions). */
  readonly canary: Buffer
}

export class FuzzPeer {
  readonly #o: FuzzPeerOptions
  readonly #r: Rand
  readonly #models = new Map<number, QpModel>()
  readonly #byPeerQpn = new Map<number, QpModel>()
  readonly #checker: IcrcChecker
  /** Datagrams from the device that carried canary bytes (memory outside a region). */
  leaks = 0
  /** Datagrams received from the device. */
  received = 0

  constructor(o: FuzzPeerOptions) {
    this.#o = o
    this.#r = o.rand
    this.#checker = new IcrcChecker(4, o.ipPeer.dst, o.ipPeer.dstPort)
  }

  /** (Re)connects the model of fuzz QP `dQpn`: the device expects `rqPsn` from the peer. */
  connect(dQpn: number, peerQpn: number, rqPsn: number): void {
    const old = this.#models.get(dQpn)
    if (old !== undefined) this.#byPeerQpn.delete(old.peerQpn)
    const m: QpModel = { dQpn, peerQpn, nextPsn: rqPsn, pending: [], responses: [], answered: new Set(), lastDevicePsn: -1, msn: 0 }
    this.#models.set(dQpn, m)
    this.#byPeerQpn.set(peerQpn, m)
  }

  // ---- what the device sends to the peer

  observe(datagram: Buffer): void {
    this.received++
    if (datagram.indexOf(this.#o.canary) >= 0) this.leaks++
    const pkt = decodePacket(datagram)
    const m = this.#byPeerQpn.get(pkt.bth.destQpn)
    if (m === undefined) return
    const op = pkt.bth.opcode
    const psn = pkt.bth.psn
    if (op === RcOpcode.ACKNOWLEDGE) {
      const kind = pkt.aeth!.syndrome & 0x60
      if (kind === 0x00 && psnDiff(psnAdd(psn, 1), m.nextPsn) > 0) m.nextPsn = psnAdd(psn, 1)
      else if (kind === 0x20 || (kind === 0x60 && (pkt.aeth!.syndrome & 0x1f) === 0)) {
        // RNR NAK or PSN sequence NAK: the device expects exactly this PSN; drop the rest of the message.
        m.nextPsn = psn
        m.pending = []
      }
      return
    }
    if (op >= RcOpcode.RDMA_READ_RESPONSE_FIRST && op <= RcOpcode.ATOMIC_ACKNOWLEDGE) return
    // A request of the device's requester: queue the response it is owed (once, sometimes twice).
    m.lastDevicePsn = psn
    const last = op === RcOpcode.SEND_LAST || op === RcOpcode.SEND_ONLY || op === RcOpcode.RDMA_WRITE_LAST || op === RcOpcode.RDMA_WRITE_ONLY ||
      op === RcOpcode.SEND_LAST_WITH_IMMEDIATE || op === RcOpcode.SEND_ONLY_WITH_IMMEDIATE || op === RcOpcode.RDMA_WRITE_LAST_WITH_IMMEDIATE || op === RcOpcode.RDMA_WRITE_ONLY_WITH_IMMEDIATE
    if (!last && !pkt.bth.ackReq && op !== RcOpcode.RDMA_READ_REQUEST && op !== RcOpcode.COMPARE_SWAP && op !== RcOpcode.FETCH_ADD) return
    if (m.answered.has(psn) && this.#r.int(4) !== 0) return
    m.answered.add(psn)
    if (m.responses.length > 256) m.responses.splice(0, 128)
    const r = this.#r
    const aeth = (): { syndrome: number; msn: number } => ({ syndrome: 0x1f, msn: (m.msn = (m.msn + 1) & 0xffffff) })
    if (r.int(10) === 0) {
      // a NAK instead: RNR, sequence, invalid request, remote access, remote operational
      const syndrome = r.pick([0x20 | r.int(32), 0x60, 0x61, 0x62, 0x63])
      m.responses.push(encodePacket(packet(RcOpcode.ACKNOWLEDGE, m.dQpn, psn, { aeth: { syndrome, msn: m.msn } })))
    } else if (op === RcOpcode.RDMA_READ_REQUEST) {
      const len = pkt.reth!.dmaLength
      const n = Math.max(1, Math.ceil(len / this.#o.pmtu))
      for (let i = 0; i < n; i++) {
        const size = i < n - 1 ? this.#o.pmtu : len - (n - 1) * this.#o.pmtu
        const opcode = n === 1 ? RcOpcode.RDMA_READ_RESPONSE_ONLY : i === 0 ? RcOpcode.RDMA_READ_RESPONSE_FIRST : i === n - 1 ? RcOpcode.RDMA_READ_RESPONSE_LAST : RcOpcode.RDMA_READ_RESPONSE_MIDDLE
        const withAeth = opcode !== RcOpcode.RDMA_READ_RESPONSE_MIDDLE
        m.responses.push(encodePacket(packet(opcode, m.dQpn, psnAdd(psn, i), { payload: r.bytes(Math.max(0, size)), ...(withAeth ? { aeth: aeth() } : {}) })))
      }
    } else if (op === RcOpcode.COMPARE_SWAP || op === RcOpcode.FETCH_ADD) {
      m.responses.push(encodePacket(packet(RcOpcode.ATOMIC_ACKNOWLEDGE, m.dQpn, psn, { aeth: aeth(), atomicAckEth: { origData: r.u64() } })))
    } else {
      m.responses.push(encodePacket(packet(RcOpcode.ACKNOWLEDGE, m.dQpn, psn, { aeth: aeth() })))
    }
  }

  // ---- what the peer sends

  /** The next fuzz packet. */
  next(): ForgedPacket {
    const r = this.#r
    const k = r.float()
    const models = [...this.#models.values()]
    const m = r.pick(models)
    if (k < 0.45) {
      // The next packet of the current message; a mutated copy leaves the original to follow.
      if (m.pending.length === 0) this.#buildMessage(m)
      if (r.float() < 0.25) return this.#fromPeer('request', m.pending[0]!, 1)
      return this.#fromPeer('request', m.pending.shift()!, 0)
    }
    if (k < 0.6) return this.#fromPeer('response', this.#nextResponse(m), 0.25)
    if (k < 0.68) {
      // The real pair's QPs: valid packets of any opcode at a random PSN (never the expected one in practice).
      const body = this.#anyPacket(r.pick(this.#o.realQpns), r.bits(24))
      return this.#fromPeer('real-qp', body, 0.3)
    }
    if (k < 0.76) {
      // Off-path: a correct next request (or response) for a fuzz QP or the real pair, from another address.
      const qpn = r.bool() ? m.dQpn : r.pick(this.#o.realQpns)
      const body = qpn === m.dQpn && m.pending.length > 0 ? m.pending[0]! : this.#anyPacket(qpn, qpn === m.dQpn ? m.nextPsn : r.bits(24))
      return this.#finish('off-path', body, 'offPath', [], true)
    }
    if (k < 0.84) {
      let qpn = r.bits(24)
      while (this.#o.deviceQpns().has(qpn)) qpn = r.bits(24)
      return this.#fromPeer('unknown-qpn', this.#anyPacket(qpn, r.bits(24)), 0.2)
    }
    if (k < 0.92) return this.#finish('garbage', r.bytes(r.int(100)), 'peer', [], r.int(8) !== 0)
    // a valid request whose ICRC is wrong
    return this.#finish('bad-icrc', this.#anyPacket(m.dQpn, m.nextPsn), 'peer', [], false)
  }

  #fromPeer(kind: string, body: Buffer, mutationRate: number): ForgedPacket {
    if (this.#r.float() >= mutationRate) return this.#finish(kind, body, 'peer', [], true)
    const { body: mutated, applied } = mutate(body, this.#r, this.#o.targets)
    return this.#finish(kind, mutated, 'peer', applied, true)
  }

  /** Signs (or, with `validIcrc` false, mis-signs) `body` and predicts where the device stops it. */
  #finish(kind: string, body: Buffer, via: 'peer' | 'offPath', mutations: string[], validIcrc: boolean): ForgedPacket {
    const ip = via === 'peer' ? this.#o.ipPeer : this.#o.ipOffPath
    let datagram: Buffer
    if (body.length < 12) datagram = Buffer.concat([body, this.#r.bytes(4)])
    else {
      datagram = sign(body, ip)
      if (!validIcrc) datagram[datagram.length - 1 - this.#r.int(4)]! ^= 1 << this.#r.int(8)
    }
    return { datagram, via, stage: this.#stage(datagram, ip, via), kind, mutations }
  }

  /** The device's receive order: length, ICRC (IPv4: ID 0, else solved), QPN, source address. */
  #stage(datagram: Buffer, ip: IpContext, via: 'peer' | 'offPath'): Stage {
    if (datagram.length < 16 || datagram.length > MAX_DATAGRAM_BYTES) return 'short'
    if (this.#checker.check(datagram, this.#checker.contextFrom(ip.src, ip.srcPort)) === 'bad') return 'badIcrc'
    if (!this.#o.deviceQpns().has(peekDestQpn(datagram))) return 'unknownQpn'
    return via === 'offPath' ? 'wrongSource' : 'qp'
  }

  #nextResponse(m: QpModel): Buffer {
    const owed = m.responses.shift()
    if (owed !== undefined) return owed
    // Nothing owed: an ACK or READ response around the device's latest request PSN.
    const r = this.#r
    const psn = m.lastDevicePsn >= 0 ? psnAdd(m.lastDevicePsn, r.int(5) - 2) : r.bits(24)
    const opcode = r.pick([RcOpcode.ACKNOWLEDGE, RcOpcode.RDMA_READ_RESPONSE_ONLY, RcOpcode.RDMA_READ_RESPONSE_FIRST, RcOpcode.ATOMIC_ACKNOWLEDGE])
    return encodePacket(packet(opcode, m.dQpn, psn, {
      aeth: { syndrome: r.pick([0x1f, 0x00, 0x60, 0x20 | r.int(32)]), msn: r.bits(24) },
      ...(opcode === RcOpcode.ATOMIC_ACKNOWLEDGE ? { atomicAckEth: { origData: r.u64() } } : {}),
      ...(opcode === RcOpcode.RDMA_READ_RESPONSE_ONLY || opcode === RcOpcode.RDMA_READ_RESPONSE_FIRST ? { payload: r.bytes(r.pick([0, 4, this.#o.pmtu, r.int(this.#o.pmtu)])) } : {}),
    }))
  }

  /** A well-formed packet of a random RC opcode for `qpn` at `psn` (headers aimed at known regions). */
  #anyPacket(qpn: number, psn: number): Buffer {
    const r = this.#r
    const opcode = r.pick(Object.values(RcOpcode))
    const region = r.pick([this.#o.rw, this.#o.ro, this.#o.atomic])
    const len = r.int(2 * this.#o.pmtu)
    return encodePacket(packet(opcode, qpn, psn, {
      reth: { va: BigInt(region.addr + r.int(region.length)), rkey: region.rkey, dmaLength: len },
      aeth: { syndrome: r.pick([0x1f, 0x60 | r.int(5), 0x20 | r.int(32)]), msn: r.bits(24) },
      immDt: r.u32(),
      atomicEth: { va: BigInt(this.#o.atomic.addr + 8 * r.int(this.#o.atomic.length / 8)), rkey: this.#o.atomic.rkey, swapAdd: r.u64(), compare: r.u64() },
      atomicAckEth: { origData: r.u64() },
      ieth: r.u32(),
      payload: OPCODE_TABLE[opcode]!.hasPayload ? r.bytes(r.int(this.#o.pmtu + 1)) : new Uint8Array(0),
    }, r.bool()))
  }

  /** Queues the packets of one valid message at the model's next PSN and advances it. */
  #buildMessage(m: QpModel): void {
    const r = this.#r
    const pmtu = this.#o.pmtu
    const k = r.float()
    const psn = m.nextPsn
    if (k < 0.6) {
      const write = k < 0.35
      // SENDs fit the device's receive buffers (4 PMTUs) but one in ten
      const len = write || r.int(10) === 0 ? r.pick([0, 1 + r.int(pmtu), pmtu, pmtu + 1 + r.int(4 * pmtu), r.int(8 * pmtu)]) : r.pick([0, 1 + r.int(pmtu), pmtu, r.int(4 * pmtu + 1)])
      const n = Math.max(1, Math.ceil(len / pmtu))
      const imm = r.int(5) === 0
      const target = this.#o.rw
      const va = BigInt(target.addr + r.int(Math.max(1, target.length - len)))
      for (let i = 0; i < n; i++) {
        const pos = n === 1 ? 4 : i === 0 ? 0 : i === n - 1 ? 2 : 1
        const last = i === n - 1
        const base = write ? RcOpcode.RDMA_WRITE_FIRST : RcOpcode.SEND_FIRST
        const opcode = base + pos + (last && imm ? 1 : 0)
        const size = last ? len - (n - 1) * pmtu : pmtu
        m.pending.push(encodePacket(packet(opcode, m.dQpn, psnAdd(psn, i), {
          payload: r.bytes(size),
          ...(write && i === 0 ? { reth: { va, rkey: target.rkey, dmaLength: len } } : {}),
          ...(last && imm ? { immDt: r.u32() } : {}),
        }, last)))
      }
      m.nextPsn = psnAdd(psn, n)
    } else if (k < 0.8) {
      const region = r.bool() ? this.#o.rw : this.#o.ro
      const len = r.int(8 * pmtu)
      const va = BigInt(region.addr + r.int(Math.max(1, region.length - len)))
      m.pending.push(encodePacket(packet(RcOpcode.RDMA_READ_REQUEST, m.dQpn, psn, { reth: { va, rkey: region.rkey, dmaLength: len } }, true)))
      m.nextPsn = psnAdd(psn, Math.max(1, Math.ceil(len / pmtu)))
    } else {
      const a = this.#o.atomic
      m.pending.push(encodePacket(packet(r.bool() ? RcOpcode.COMPARE_SWAP : RcOpcode.FETCH_ADD, m.dQpn, psn, {
        atomicEth: { va: BigInt(a.addr + 8 * r.int(a.length / 8)), rkey: a.rkey, swapAdd: r.u64(), compare: r.bool() ? 0n : r.u64() },
      }, true)))
      m.nextPsn = psnAdd(psn, 1)
    }
  }
}
