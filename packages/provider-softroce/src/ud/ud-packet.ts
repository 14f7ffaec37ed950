/**
 * Unreliable Datagram packets on RoCEv2 (IBTA vol. 1, 9.2 and 9.3.2): BTH (transport bits 011) +
 * DETH (Q_Key, source QPN) [+ ImmDt] + payload + pad; the ICRC is handled by wire/icrc.ts.
 * Only SEND_ONLY and SEND_ONLY_WITH_IMMEDIATE exist for UD.
 */
import { WireError, WireErrorCode } from '../wire/errors.js'

export const UdOpcode = { SEND_ONLY: 0x64, SEND_ONLY_WITH_IMMEDIATE: 0x65 } as const

const BTH = 12
const DETH = 8
const IMM = 4
const ICRC = 4
/** The default partition, full membership. */
export const DEFAULT_PKEY = 0xffff

export interface UdPacket {
  readonly destQpn: number
  readonly psn: number
  readonly pkey: number
  readonly qkey: number
  readonly srcQpn: number
  readonly solicited: boolean
  readonly immDt?: number
  /** Without pad and ICRC: a view into the datagram on decode. */
  readonly payload: Uint8Array
}

function put32(out: Uint8Array, o: number, v: number): void {
  out[o] = v >>> 24
  out[o + 1] = v >>> 16
  out[o + 2] = v >>> 8
  out[o + 3] = v
}

function get32(u: Uint8Array, o: number): number {
  return ((u[o]! << 24) | (u[o + 1]! << 16) | (u[o + 2]! << 8) | u[o + 3]!) >>> 0
}

function checkUint(what: string, v: number, max: number): void {
  if (!(v >= 0 && v <= max && Math.floor(v) === v)) throw new WireError(WireErrorCode.FIELD, `${what} must be an integer 0..${max}, got ${String(v)}`)
}

/** Bytes of the UDP payload without the ICRC (headers, payload, pad). */
export function udLength(payloadLength: number, withImm: boolean): number {
  return BTH + DETH + (withImm ? IMM : 0) + ((payloadLength + 3) & ~3)
}

/** A new buffer with the packet and 4 spare bytes for the ICRC (write it with writeIcrc(out, out.length - 4, ip)). */
export function encodeUdPacket(p: UdPacket): Buffer {
  checkUint('UD destQpn', p.destQpn, 0xffffff)
  checkUint('UD srcQpn', p.srcQpn, 0xffffff)
  checkUint('UD psn', p.psn, 0xffffff)
  checkUint('UD pkey', p.pkey, 0xffff)
  checkUint('UD qkey', p.qkey, 0xffffffff)
  const withImm = p.immDt !== undefined
  if (withImm) checkUint('UD immDt', p.immDt!, 0xffffffff)
  const plen = p.payload.length
  const pad = (4 - (plen & 3)) & 3
  const out = Buffer.alloc(udLength(plen, withImm) + ICRC)
  out[0] = withImm ? UdOpcode.SEND_ONLY_WITH_IMMEDIATE : UdOpcode.SEND_ONLY
  out[1] = (p.solicited ? 0x80 : 0) | (pad << 4)
  out[2] = p.pkey >>> 8
  out[3] = p.pkey
  put32(out, 4, p.destQpn)
  // AckReq set, as rxe and NICs send their UD packets (it means nothing for UD).
  put32(out, 8, (0x80000000 | p.psn) >>> 0)
  put32(out, 12, p.qkey)
  put32(out, 16, p.srcQpn)
  let o = BTH + DETH
  if (withImm) {
    put32(out, o, p.immDt!)
    o += IMM
  }
  out.set(p.payload, o)
  return out
}

/** Decodes a UD datagram (ICRC included, not checked here). Returns a WireError for anything else or truncated. */
export function decodeUdPacket(u: Uint8Array): UdPacket | WireError {
  if (u.length < BTH + DETH + ICRC) return new WireError(WireErrorCode.TRUNCATED, `${u.length} bytes is shorter than BTH + DETH + ICRC`)
  const opcode = u[0]!
  if (opcode !== UdOpcode.SEND_ONLY && opcode !== UdOpcode.SEND_ONLY_WITH_IMMEDIATE) return new WireError(WireErrorCode.OPCODE, `opcode 0x${opcode.toString(16)} is not a UD SEND`)
  if ((u[1]! & 0x0f) !== 0) return new WireError(WireErrorCode.VERSION, `BTH transport version ${u[1]! & 0x0f}, expected 0`)
  if ((u.length & 3) !== 0) return new WireError(WireErrorCode.LENGTH, `packet length ${u.length} is not a multiple of 4`)
  const withImm = opcode === UdOpcode.SEND_ONLY_WITH_IMMEDIATE
  const hlen = BTH + DETH + (withImm ? IMM : 0)
  if (u.length < hlen + ICRC) return new WireError(WireErrorCode.TRUNCATED, `UD SEND with immediate needs ${hlen + ICRC} bytes, got ${u.length}`)
  const pad = (u[1]! >>> 4) & 3
  const room = u.length - ICRC - hlen
  if (pad > room) return new WireError(WireErrorCode.PAD, `pad count ${pad} exceeds the ${room} payload bytes`)
  return {
    destQpn: get32(u, 4) & 0xffffff,
    psn: get32(u, 8) & 0xffffff,
    pkey: (u[2]! << 8) | u[3]!,
    qkey: get32(u, 12),
    srcQpn: get32(u, 16) & 0xffffff,
    solicited: (u[1]! & 0x80) !== 0,
    ...(withImm ? { immDt: get32(u, BTH + DETH) } : {}),
    payload: u.subarray(hlen, hlen + room - pad),
  }
}
