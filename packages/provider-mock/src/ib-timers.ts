/** IB timer encodings (local ACK timeout, RNR NAK timer) turned into mock milliseconds, capped so tests stay fast. */

/** Local ACK timeout: 4.096 µs * 2^timeout, capped at `capMs`; 0 means "wait forever". */
export function ackTimeoutMs(timeout: number, capMs: number): number {
  if (timeout === 0) return Infinity
  return Math.min(0.004096 * 2 ** timeout, capMs)
}

/** The RNR NAK timer table of the IB spec (table 45), in milliseconds; index 0 is the longest. */
const RNR_TIMER_MS = [
  655.36, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24, 0.32, 0.48, 0.64, 0.96, 1.28, 1.92, 2.56, 3.84, 5.12, 7.68, 10.24, 15.36, 20.48,
  30.72, 40.96, 61.44, 81.92, 122.88, 163.84, 245.76, 327.68, 491.52,
] as const

/** How long a requester waits after an RNR NAK carrying `minRnrTimer`, capped at `capMs`. */
export function rnrDelayMs(minRnrTimer: number, capMs: number): number {
  return Math.min(RNR_TIMER_MS[minRnrTimer] ?? RNR_TIMER_MS[12], capMs)
}
