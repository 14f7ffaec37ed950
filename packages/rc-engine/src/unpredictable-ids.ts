/** Unpredictable identifiers (memory keys, QPNs, address bases) drawn from node:crypto in pooled batches, so a peer cannot guess them. */
import { randomBytes } from 'node:crypto'

const POOL_BYTES = 4096
let pool = Buffer.alloc(0)
let offset = 0

function random32(): number {
  if (offset + 4 > pool.length) {
    pool = randomBytes(POOL_BYTES)
    offset = 0
  }
  const v = pool.readUInt32LE(offset)
  offset += 4
  return v
}

/** A random 32-bit memory key, never 0. */
export function randomKey(): number {
  let k = 0
  while (k === 0) k = random32()
  return k
}

/** A random 24-bit QP number, never 0 or 1 (reserved for QP0/QP1) nor 0xffffff (multicast). */
export function randomQpn(): number {
  let q = 0
  while (q <= 1 || q === 0xffffff) q = random32() & 0xffffff
  return q
}

/** A random integer in [0, 2^24), used to place each host's virtual addresses. */
export function random24(): number {
  return random32() & 0xffffff
}
