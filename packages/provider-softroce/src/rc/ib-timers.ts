/** IB timer encodings (local ACK timeout, RNR NAK timer) in milliseconds, with the caps tests use to stay fast. */

/** Local ACK timeout: 4.096 µs · 2^timeout; 0 means "wait forever". Clamped to [minMs, maxMs]. */
export function ackTimeoutMs(timeout: number, minMs: number, maxMs: number): number {
  if (timeout === 0) return Infinity
  return Math.min(Math.max(0.004096 * 2 ** timeout, minMs), maxMs)
}

/** The RNR NAK timer table of the IB spec (table 45), in milliseconds; encoding 0 is the longest. */
const RNR_TIMER_MS = [
  655.36, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24, 0.32, 0.48, 0.64, 0.96, 1.28, 1.92, 2.56, 3.84, 5.12, 7.68, 10.24, 15.36, 20.48,
  30.72, 40.96, 61.44, 81.92, 122.88, 163.84, 245.76, 327.68, 491.52,
] as const

/** How long a requester waits after an RNR NAK whose AETH carries `timer` (5 bits), capped at `maxMs`. */
export function rnrDelayMs(timer: number, maxMs: number): number {
  return Math.min(RNR_TIMER_MS[timer & 0x1f] ?? 0.64, maxMs)
}

/** Timer settings a device applies to all its QPs; tests shorten them. */
export interface RcTimerOptions {
  /** Lower bound of the local ACK timeout in ms (default 1). */
  readonly ackTimeoutMinMs?: number
  /** Upper bound of the local ACK timeout in ms (default 10 000). */
  readonly ackTimeoutMaxMs?: number
  /** Upper bound of the RNR wait in ms (default 1000). */
  readonly rnrDelayMaxMs?: number
  /**
   * How long the responder may hold the ACK of packets that did not ask for one (AckReq clear:
   * unsignaled WRs), in ms (default 1). ACKs that were asked for go out at the end of the
   * current receive batch.
   */
  readonly ackDelayMs?: number
}

export interface RcTimers {
  readonly ackTimeoutMinMs: number
  readonly ackTimeoutMaxMs: number
  readonly rnrDelayMaxMs: number
  readonly ackDelayMs: number
}

export function resolveTimers(o: RcTimerOptions = {}): RcTimers {
  return {
    ackTimeoutMinMs: o.ackTimeoutMinMs ?? 1,
    ackTimeoutMaxMs: o.ackTimeoutMaxMs ?? 10_000,
    rnrDelayMaxMs: o.rnrDelayMaxMs ?? 1000,
    ackDelayMs: o.ackDelayMs ?? 1,
  }
}
