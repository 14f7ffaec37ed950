/**
 * AETH syndrome byte (IBTA 9.7.5.2, tables 43-45): bits 6-5 say ACK (00), RNR NAK (01) or NAK
 * (11); bits 4-0 carry the credit count, the RNR timer code or the NAK code. Bit 7 is reserved.
 */
import { RNR_TIMER_US } from '@rdma-session/rc-engine'
import { WireError, WireErrorCode } from './errors.js'

export const NakCode = {
  PSN_SEQUENCE_ERROR: 0,
  INVALID_REQUEST: 1,
  REMOTE_ACCESS_ERROR: 2,
  REMOTE_OPERATIONAL_ERROR: 3,
  INVALID_RD_REQUEST: 4,
} as const
export type NakCode = (typeof NakCode)[keyof typeof NakCode]

/** Credit count 31: "invalid", i.e. the responder does not do end-to-end flow control. */
export const CREDITS_INVALID = 31

const KIND_MASK = 0x60
const KIND_ACK = 0x00
const KIND_RNR = 0x20
const KIND_NAK = 0x60
const VALUE_MASK = 0x1f

function check5(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > VALUE_MASK) {
    throw new WireError(WireErrorCode.FIELD, `AETH ${what} must be an integer 0..31, got ${v}`)
  }
}

/** ACK syndrome with a credit count code (default 31 = no end-to-end credits). */
export function ackSyndrome(credits: number = CREDITS_INVALID): number {
  check5('credit count', credits)
  return KIND_ACK | credits
}

/** RNR NAK syndrome with an RNR timer code (see rnrTimerMicros). */
export function rnrNakSyndrome(timerCode: number): number {
  check5('RNR timer code', timerCode)
  return KIND_RNR | timerCode
}

/** NAK syndrome with a NAK code (NakCode; 5..31 are reserved but encodable). */
export function nakSyndrome(code: number): number {
  check5('NAK code', code)
  return KIND_NAK | code
}

export type Syndrome =
  | { kind: 'ack'; credits: number }
  | { kind: 'rnr'; timerCode: number }
  | { kind: 'nak'; nakCode: number }
  /** Bits 6-5 = 10 is reserved in RC; a receiver should treat it as an invalid packet. */
  | { kind: 'reserved'; value: number }

/** Splits a syndrome byte into its kind and value. Bit 7 (reserved) is ignored. */
export function parseSyndrome(s: number): Syndrome {
  const value = s & VALUE_MASK
  switch (s & KIND_MASK) {
    case KIND_ACK:
      return { kind: 'ack', credits: value }
    case KIND_RNR:
      return { kind: 'rnr', timerCode: value }
    case KIND_NAK:
      return { kind: 'nak', nakCode: value }
    default:
      return { kind: 'reserved', value }
  }
}

/** Cheap checks for the receive path (no allocation). */
export function isAck(s: number): boolean {
  return (s & KIND_MASK) === KIND_ACK
}
export function isRnrNak(s: number): boolean {
  return (s & KIND_MASK) === KIND_RNR
}
export function isNak(s: number): boolean {
  return (s & KIND_MASK) === KIND_NAK
}

/** RNR NAK timer code (0..31) to microseconds: 0 -> 655360, 1 -> 10, ..., 31 -> 491520. */
export function rnrTimerMicros(code: number): number {
  check5('RNR timer code', code)
  return RNR_TIMER_US[code] as number
}

/** The smallest timer code whose delay is at least `micros` (31 = 491.52 ms, else 0 = 655.36 ms). */
export function rnrTimerCodeFor(micros: number): number {
  for (let code = 1; code < 32; code++) if ((RNR_TIMER_US[code] as number) >= micros) return code
  return 0
}

// IBTA table 44: AETH credit count code -> number of receive WQEs (code 31 = invalid).
const CREDITS: readonly number[] = [
  0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
  3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768,
]

/** Credit count code to receive-WQE count; undefined for 31 (no end-to-end flow control). */
export function creditsFromCode(code: number): number | undefined {
  check5('credit count', code)
  return CREDITS[code]
}

/** The largest credit count code whose count does not exceed `wqes` (for advertising credits). */
export function creditCodeFor(wqes: number): number {
  let code = 0
  while (code < 30 && (CREDITS[code + 1] as number) <= wqes) code++
  return code
}
