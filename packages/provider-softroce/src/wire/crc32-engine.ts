/**
 * The CRC-32 that the ICRC code calls over packet bytes (zlib.crc32's contract: `value` is the
 * running CRC, 0 to start). zlib's by default; the socket helper installs its own when it loads
 * (native/crc32_fold.c: carry-less multiplication, about 6x zlib's speed on 4 KiB packets), with
 * the same results. RDMA_SESSION_SOFTROCE_NATIVE_CRC=off keeps zlib's.
 */
import { crc32 as zlibCrc32 } from 'node:zlib'

export type Crc32 = (data: Uint8Array, value: number) => number

export const NATIVE_CRC_DISABLE_ENV = 'RDMA_SESSION_SOFTROCE_NATIVE_CRC'

/** The engine in use; a live binding, so callers always see the current one. */
export let crc32: Crc32 = zlibCrc32 as Crc32
let engineName: 'zlib' | 'native' = 'zlib'

/** Installs `fn` (the helper's crc32), or zlib's again with undefined. */
export function useCrc32(fn: Crc32 | undefined): void {
  crc32 = fn ?? (zlibCrc32 as Crc32)
  engineName = fn === undefined ? 'zlib' : 'native'
}

/** Which engine computes ICRCs: 'native' (the helper's) or 'zlib'. */
export function crc32Engine(): 'zlib' | 'native' {
  return engineName
}
