/** IB timer encodings (local ACK timeout, RNR NAK timer) in milliseconds, with the caps tests use to stay fast. */

/** Local ACK timeout: 4.096 µs · 2^timeout; 0 means "wait forever". Clamped to [minMs, maxMs]. */
export function ackTimeoutMs(timeout: number, minMs: number, maxMs: number): number {
  if (timeout === 0) return Infinity
  return Math.min(Math.max(0.004096 * 2 ** timeout, minMs), maxMs)
}

/**
 * The RNR NAK timer table of the IB spec (table 45), in microseconds; encoding 0 is the longest
 * (655.36 ms). (Kernel rxe's table has 61410 for code 25, a typo; the spec says 61.44 ms.)
 */
export const RNR_TIMER_US: readonly number[] = Object.freeze([
  655360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920, 2560, 3840,
  5120, 7680, 10240, 15360, 20480, 30720, 40960, 61440, 81920, 122880, 163840, 245760, 327680,
  491520,
])

/** How long a requester waits after an RNR NAK whose AETH carries `timer` (5 bits), capped at `maxMs`. */
export function rnrDelayMs(timer: number, maxMs: number): number {
  return Math.min((RNR_TIMER_US[timer & 0x1f] as number) / 1000, maxMs)
}
