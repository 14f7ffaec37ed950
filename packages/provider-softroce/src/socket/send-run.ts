/**
 * Runs: equal-sized packets of one message (WRITE/SEND middle packets of a plaintext QP) framed
 * by the helper (native/roce_run.c) from one header and the payload, and sent as UDP GSO messages
 * in one sendmmsg: one call from JavaScript per run, no buffer per packet. Packet k of a run is
 * the header with PSN + k and AckReq from ackReq[k], payload [k*seg, (k+1)*seg), and its ICRC,
 * byte for byte what packet-framing.ts and send-batch.ts put on the wire for the same packets
 * (IPv4: packet j of a GSO message leaves with ID j and an ICRC for that ID).
 */
import { HeaderSize } from '../wire/opcodes.js'
import { icrcSeed, ipv4IdBasis, type IpContext } from '../wire/icrc.js'
import { GSO_MAX_BYTES, GSO_MAX_SEGMENTS } from './send-batch.js'
import type { RoceRunAddon } from './sockopt-addon.js'

/** Packets per run (the helper takes up to 256; a turn of the scheduler should stay short). */
export const RUN_MAX_PACKETS = 32

/** A run as the requester hands it over. */
export interface PacketRun {
  /** The headers of the run's first packet (its PSN; AckReq is taken from ackReq). */
  readonly header: Uint8Array
  /** count * seg bytes: the payload of every packet, in order. */
  readonly payload: Uint8Array
  /** Payload bytes per packet (a multiple of 4: no pad). */
  readonly seg: number
  readonly count: number
  /** Per packet: 1 where it asks for an ACK. */
  readonly ackReq: Uint8Array
  readonly ip: IpContext
}

/** The helper's arguments for a run's ICRCs: seed, IPv4 ID basis, packets per GSO message. */
export interface RunCrc {
  readonly crcStart: number
  readonly idBasis: Uint32Array | null
  readonly segsPerMsg: number
}

export function runCrc(run: PacketRun): RunCrc {
  const datagram = run.header.length + run.seg + HeaderSize.ICRC
  return {
    crcStart: icrcSeed(run.ip, datagram),
    idBasis: run.ip.family === 4 ? ipv4IdBasis(run.ip, datagram) : null,
    segsPerMsg: Math.max(1, Math.min(GSO_MAX_SEGMENTS, Math.floor(GSO_MAX_BYTES / datagram))),
  }
}

/** The run's packets end to end (what sendRun puts on the wire, one datagram after another). */
export function frameRun(addon: RoceRunAddon, run: PacketRun): Buffer {
  const c = runCrc(run)
  const out = Buffer.allocUnsafe((run.header.length + run.seg + HeaderSize.ICRC) * run.count)
  addon.frameRun(out, run.header, run.payload, run.seg, run.count, run.ackReq, c.crcStart, c.idBasis, c.segsPerMsg)
  return out
}
