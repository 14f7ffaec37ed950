/**
 * Receive runs: consecutive in-order middle packets (and the last) of one RC WRITE or SEND of a
 * plaintext QP, read in one receive batch, are checked and placed by the helper
 * (native/roce_receive_run.c) in one call instead of one by one in JavaScript: ICRC (IPv4: any
 * ID, as icrc-check.ts solves it), opcode, destination QPN, consecutive PSNs from the expected
 * one, transport version, P_Key, pad, payload size, the source of the run's first datagram, and
 * the bounds of the target (the WRITE's MR range validated at its first packet, or the posted
 * receive's SGEs). The first datagram that does not qualify stops the run; the device handles it
 * and the rest on its per-packet path.
 */
import { HeaderSize, RcOpcode } from '../wire/opcodes.js'
import { icrcSeed, ipv4IdBasis, type IpContext } from '../wire/icrc.js'
import type { RoceReceiveRunAddon } from './sockopt-addon.js'

/** Where the packets of a run go, as the responder sees its current message. */
export interface ReceiveRunPlan {
  /** The expected PSN: the run's first packet must carry it. */
  readonly psn: number
  /** The path MTU: the payload bytes of every middle packet. */
  readonly pmtu: number
  /** RDMA_WRITE_MIDDLE / SEND_MIDDLE. */
  readonly opMiddle: number
  /** RDMA_WRITE_LAST / SEND_LAST (without immediate: its completion stays in JavaScript). */
  readonly opLast: number
  /** The target: the WRITE's MR range, or the receive's SGE views, as one concatenation. */
  readonly targets: readonly Uint8Array[]
  /** Where the next payload byte goes in the targets. */
  readonly offset: number
  /** WRITE: the last packet must fill the target exactly; SEND: at most. */
  readonly exact: boolean
  /** The payload bytes of the last packet when known (WRITE), else the path MTU (a SEND's last packet is taken only at full size). */
  readonly lastPayload: number
}

/** What a run did. */
export interface ReceiveRunResult {
  /** Packets consumed (0: none; the first datagram goes the per-packet path). */
  readonly packets: number
  /** Payload bytes placed. */
  readonly bytes: number
  /** Datagram bytes of the packets consumed. */
  readonly datagramBytes: number
  /** IPv4 packets whose ICRC fit only with a non-zero IP ID (icrc-check.ts 'solved'). */
  readonly solved: number
  /** Packets with AckReq. */
  readonly ackRequests: number
  /** The message's last packet was consumed. */
  readonly ended: boolean
}

const P_DQPN = 0
const P_PSN = 1
const P_OP_MIDDLE = 2
const P_OP_LAST = 3
const P_PMTU = 4
const P_OFFSET = 5
const P_EXACT = 6
const P_V4 = 7
const P_LAST_LEN = 8

/** The datagram length of a packet with only a BTH and `payload` bytes (padded to 4). */
export function bthOnlyDatagram(payload: number): number {
  return HeaderSize.BTH + ((payload + 3) & ~3) + HeaderSize.ICRC
}

/** The bytes of a WRITE's last packet for a target of `length` bytes and path MTU `pmtu` (length > pmtu). */
export function lastPayloadOf(length: number, pmtu: number): number {
  return ((length - 1) % pmtu) + 1
}

/** Whether the opcode may continue a run (middle or last of a WRITE or SEND, no immediate). */
export function runOpcode(op: number): boolean {
  return op === RcOpcode.RDMA_WRITE_MIDDLE || op === RcOpcode.RDMA_WRITE_LAST || op === RcOpcode.SEND_MIDDLE || op === RcOpcode.SEND_LAST
}

/** The helper's receiveRun with its argument arrays, reused from call to call. */
export class ReceiveRuns {
  readonly #addon: RoceReceiveRunAddon
  readonly #params = new Uint32Array(9)
  readonly #seeds = new Uint32Array(34)
  readonly #out = new Int32Array(8)

  constructor(addon: RoceReceiveRunAddon) {
    this.#addon = addon
  }

  /**
   * Runs the helper over meta entries first..end-1 of `slab` for QP `dqpn` whose packets travel
   * with `ip` (the run's source), as `plan` says.
   */
  run(slab: Uint8Array, meta: Int32Array, first: number, end: number, dqpn: number, ip: IpContext, plan: ReceiveRunPlan): ReceiveRunResult {
    const p = this.#params
    const pmtu = plan.pmtu
    const midLen = bthOnlyDatagram(pmtu)
    const lastLen = bthOnlyDatagram(plan.lastPayload)
    p[P_DQPN] = dqpn
    p[P_PSN] = plan.psn
    p[P_OP_MIDDLE] = plan.opMiddle
    p[P_OP_LAST] = plan.opLast
    p[P_PMTU] = pmtu
    p[P_OFFSET] = plan.offset
    p[P_EXACT] = plan.exact ? 1 : 0
    p[P_V4] = ip.family === 4 ? 1 : 0
    p[P_LAST_LEN] = lastLen
    const s = this.#seeds
    s[0] = icrcSeed(ip, midLen)
    s[1] = icrcSeed(ip, lastLen)
    if (ip.family === 4) {
      s.set(ipv4IdBasis(ip, midLen), 2)
      s.set(ipv4IdBasis(ip, lastLen), 18)
    }
    const o = this.#out
    const packets = this.#addon.receiveRun(slab, meta, first, end, p, s, plan.targets, o)
    return { packets, bytes: o[1]!, solved: o[2]!, ackRequests: o[3]!, ended: o[4] === 1, datagramBytes: o[5]! }
  }

  /** Why the last run stopped (STOP_* of roce_receive_run.c) and the meta index it stopped at (tests). */
  get lastStop(): { readonly reason: number; readonly index: number } {
    return { reason: this.#out[6]!, index: this.#out[7]! }
  }
}
