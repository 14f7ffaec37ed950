/**
 * The selective-acknowledgment (SACK) block of softroce's `selective-repeat` extension, sent only
 * to peers that announced the extension. A SACK NAK is an ordinary RoCEv2 ACKNOWLEDGE packet:
 * BTH, an AETH with a NAK PSN-sequence-error syndrome at the responder's expected PSN (so it
 * still says what a sequence NAK says: everything before that PSN arrived), and this block as
 * the packet's remaining bytes before the ICRC:
 *
 *   word 0: magic 0x53 ('S') | version 1 | word count n (1..MAX_SACK_WORDS) | reserved 0
 *   words 1..n: bitmap, bit b of word i (value 1 << b) set: PSN nakPsn + 1 + 32 i + b arrived
 *   and is held by the responder. Every clear bit below the highest set one is a missing PSN.
 *
 * The NAK PSN itself is always missing (it is the first PSN the responder has not got).
 */
import { psnAdd } from '@rdma-session/rc-engine'

export const SACK_MAGIC = 0x53
export const SACK_VERSION = 1
/** Bitmap words a SACK block carries at most (1024 PSNs after the NAK PSN). */
export const MAX_SACK_WORDS = 32

/** Bytes of a SACK block with `words` bitmap words. */
export function sackBytes(words: number): number {
  return 4 + 4 * words
}

/**
 * Writes a SACK block for `bitmap` (its first `words` words) into a new buffer.
 * `words` must be 1..MAX_SACK_WORDS.
 */
export function encodeSack(bitmap: Uint32Array, words: number): Uint8Array {
  if (!Number.isInteger(words) || words < 1 || words > MAX_SACK_WORDS || words > bitmap.length) {
    throw new RangeError(`a SACK block has 1..${MAX_SACK_WORDS} bitmap words, got ${words}`)
  }
  const out = new Uint8Array(sackBytes(words))
  const dv = new DataView(out.buffer)
  out[0] = SACK_MAGIC
  out[1] = SACK_VERSION
  out[2] = words
  for (let i = 0; i < words; i++) dv.setUint32(4 + 4 * i, bitmap[i]!)
  return out
}

/** A parsed SACK block: the bitmap words (bit b of word i: PSN nakPsn + 1 + 32 i + b arrived). */
export interface SackBlock {
  readonly words: Uint32Array
  /** Offset (from nakPsn + 1) of the highest set bit, or -1 when no bit is set. */
  readonly highest: number
}

/** Parses a SACK block, or returns null when `bytes` is not a well-formed one. */
export function parseSack(bytes: Uint8Array): SackBlock | null {
  if (bytes.length < 8 || (bytes.length & 3) !== 0) return null
  if (bytes[0] !== SACK_MAGIC || bytes[1] !== SACK_VERSION || bytes[3] !== 0) return null
  const n = bytes[2]!
  if (n < 1 || n > MAX_SACK_WORDS || bytes.length !== sackBytes(n)) return null
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const words = new Uint32Array(n)
  let highest = -1
  for (let i = 0; i < n; i++) {
    const w = dv.getUint32(4 + 4 * i)
    words[i] = w
    if (w !== 0) highest = 32 * i + (31 - Math.clz32(w))
  }
  return { words, highest }
}

/** True when bit `offset` of the block is set (PSN nakPsn + 1 + offset arrived). */
export function sackHas(block: SackBlock, offset: number): boolean {
  const w = block.words[offset >>> 5]
  return w !== undefined && ((w >>> (offset & 31)) & 1) === 1
}

/** The PSN bit `offset` of a SACK at `nakPsn` names. */
export function sackPsn(nakPsn: number, offset: number): number {
  return psnAdd(nakPsn, 1 + offset)
}
