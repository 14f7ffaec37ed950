/** 24-bit packet sequence number arithmetic with wrap-around (IBTA 9.7.1). */

export const PSN_MASK = 0xffffff
/** The size of the PSN space, 2^24. */
export const PSN_MODULUS = 0x1000000
/** Half the PSN space: a PSN up to this far "ahead" counts as newer, anything further as older. */
export const PSN_HALF = 0x800000

/** psn + n modulo 2^24 (n may be negative; any safe integer). */
export function psnAdd(psn: number, n: number): number {
  // `n & PSN_MASK` reduces n modulo 2^24 first (ToInt32 is modulo 2^32, a multiple of 2^24),
  // so the sum stays a small integer for any safe-integer n.
  return (psn + (n & PSN_MASK)) & PSN_MASK
}

/** a - b as a signed distance in [-2^23, 2^23): positive if a is after b. */
export function psnDiff(a: number, b: number): number {
  return ((a - b) << 8) >> 8
}

/** True if a comes before b (in the half of the PSN space behind b). */
export function psnLess(a: number, b: number): boolean {
  return psnDiff(a, b) < 0
}

/** True if a comes before b or equals it. */
export function psnLessOrEqual(a: number, b: number): boolean {
  return psnDiff(a, b) <= 0
}

/** True if psn is an integer in [0, 2^24). */
export function isPsn(psn: number): boolean {
  return Number.isInteger(psn) && psn >= 0 && psn <= PSN_MASK
}
