/**
 * Raw CRC-32 (IEEE, reflected, polynomial 0xEDB88320) register arithmetic, to complement
 * zlib.crc32 around the ICRC pseudo-header: per-byte table steps, and linear maps that "advance"
 * a register over N bytes. A register here is the un-inverted state; zlib.crc32's running value
 * is its complement (~register).
 *
 * The register update is linear in (register, data) over GF(2). So feeding N known bytes m into
 * register r gives advance_N(r) ^ crcRegister(0, m), and two streams that differ only in one byte
 * d bytes before the end differ in their final CRC by advance_d(CRC_TABLE[x ^ y]).
 */

export const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

/** CRC-32 of any message followed by its own CRC (little-endian): the check for a whole packet. */
export const CRC32_RESIDUE = 0x2144df1c

/** The register after feeding bytes[start, end) into register `s`. */
export function crcRegister(s: number, bytes: ArrayLike<number>, start = 0, end = bytes.length): number {
  let c = s
  for (let i = start; i < end; i++) c = (CRC_TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8)
  return c >>> 0
}

/** The linear map "feed N zero bytes" on a register, as four 256-entry tables (4 lookups). */
export class CrcAdvance {
  private readonly t = new Uint32Array(1024)

  /** From the images of the 32 unit registers. */
  private constructor(basis: Uint32Array) {
    for (let k = 0; k < 4; k++) {
      for (let v = 0; v < 256; v++) {
        let x = 0
        for (let b = 0; b < 8; b++) if (v & (1 << b)) x ^= basis[8 * k + b] as number
        this.t[256 * k + v] = x >>> 0
      }
    }
  }

  /** Feeding `n` zero bytes, built by running them (for small n). */
  static zeros(n: number): CrcAdvance {
    const zeros = new Uint8Array(n)
    const basis = new Uint32Array(32)
    for (let bit = 0; bit < 32; bit++) basis[bit] = crcRegister((1 << bit) >>> 0, zeros)
    return new CrcAdvance(basis)
  }

  /** This map applied twice (advance over 2n bytes). */
  doubled(): CrcAdvance {
    const basis = new Uint32Array(32)
    for (let bit = 0; bit < 32; bit++) basis[bit] = this.apply(this.apply((1 << bit) >>> 0))
    return new CrcAdvance(basis)
  }

  apply(s: number): number {
    const t = this.t
    return ((t[s & 0xff] as number) ^ (t[256 + ((s >>> 8) & 0xff)] as number) ^ (t[512 + ((s >>> 16) & 0xff)] as number) ^ (t[768 + (s >>> 24)] as number)) >>> 0
  }
}

// POW2[k] advances over 2^k bytes; built on demand (each is 4 KiB).
const POW2: CrcAdvance[] = []

/** Register `s` advanced over `n` zero bytes, in O(log n) table lookups. */
export function crcAdvance(s: number, n: number): number {
  let x = s
  let k = 0
  for (let m = n; m > 0; m >>>= 1, k++) {
    if (m & 1) {
      let a = POW2[k]
      if (a === undefined) {
        for (let j = POW2.length; j <= k; j++) POW2[j] = j === 0 ? CrcAdvance.zeros(1) : (POW2[j - 1] as CrcAdvance).doubled()
        a = POW2[k] as CrcAdvance
      }
      x = a.apply(x)
    }
  }
  return x
}
