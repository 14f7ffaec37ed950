/**
 * Local side of a work request: gathering a send's SGE list and scattering
 * received bytes, with the lkey, protection-domain, bounds and local-write
 * checks a NIC makes (a failure is LOC_PROT_ERR and touches no memory).
 */
import { AccessFlag, type Sge } from '@rdma-session/provider-interface'
import type { MemoryOwner, MemoryTable } from './memory-region.js'
import { EMPTY_PAYLOAD } from './packet.js'

function localView(table: MemoryTable, pd: MemoryOwner, sge: Sge, access: number): Uint8Array | null {
  const mr = table.byLkey(sge.lkey)
  if (mr === undefined || mr.owner !== pd) return null
  return mr.view(sge.addr, sge.length, access)
}

/** Copies the bytes the SGE list names into one new array (`length` is their sum); null on a protection error. */
export function gather(table: MemoryTable, pd: MemoryOwner, sges: readonly Sge[], length: number): Uint8Array | null {
  if (length === 0) return EMPTY_PAYLOAD
  if (sges.length === 1) return localView(table, pd, sges[0]!, 0)?.slice() ?? null
  const out = new Uint8Array(length)
  let at = 0
  for (const sge of sges) {
    if (sge.length === 0) continue
    const v = localView(table, pd, sge, 0)
    if (v === null) return null
    out.set(v, at)
    at += v.length
  }
  return out
}

/** True when every SGE that `length` bytes would land in is valid and locally writable. */
export function canScatter(table: MemoryTable, pd: MemoryOwner, sges: readonly Sge[], length: number): boolean {
  let left = length
  for (const sge of sges) {
    if (left <= 0) break
    if (sge.length === 0) continue
    if (localView(table, pd, sge, AccessFlag.LOCAL_WRITE) === null) return false
    left -= sge.length
  }
  return left <= 0
}

/** Writes `data` across the SGE list in order; false (and nothing written) on a protection error or if it does not fit. */
export function scatter(table: MemoryTable, pd: MemoryOwner, sges: readonly Sge[], data: Uint8Array): boolean {
  if (!canScatter(table, pd, sges, data.length)) return false
  let at = 0
  for (const sge of sges) {
    if (at >= data.length) break
    if (sge.length === 0) continue
    const n = Math.min(sge.length, data.length - at)
    const v = localView(table, pd, { addr: sge.addr, length: n, lkey: sge.lkey }, AccessFlag.LOCAL_WRITE)!
    v.set(data.subarray(at, at + n))
    at += n
  }
  return true
}

/** The total length of an SGE list. */
export function sgeBytes(sges: readonly Sge[]): number {
  let n = 0
  for (const s of sges) n += s.length
  return n
}
