/** 24-bit packet sequence number (PSN) arithmetic: PSNs wrap at 2^24. */

export const PSN_MODULUS = 0x1000000
const PSN_MASK = 0xffffff
const HALF = 0x800000

/** `psn + n`, wrapped to 24 bits. */
export function psnAdd(psn: number, n: number): number {
  return (psn + n) & PSN_MASK
}

/** The signed distance `a - b` on the 24-bit circle, in [-2^23, 2^23). Negative: `a` is older than `b`. */
export function psnDiff(a: number, b: number): number {
  const d = (a - b) & PSN_MASK
  return d >= HALF ? d - PSN_MODULUS : d
}
