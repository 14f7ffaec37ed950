/** Scatter/gather lists resolved to byte views: gather a payload range as views (no copy) and scatter bytes into a list. */
import type { Sge } from '@rdma-session/provider-interface'
import type { MemoryTable, PdHandle } from './memory-table.js'

/** An SGE list resolved against the MR table: one view per SGE, and the total length. */
export interface ResolvedSgl {
  readonly views: readonly Uint8Array[]
  readonly length: number
}

export const EMPTY_SGL: ResolvedSgl = { views: [], length: 0 }

/** Resolves every SGE (lkey, bounds, local-write when the list is written to); null on the first violation. */
export function resolveSgl(table: MemoryTable, pd: PdHandle, sgList: readonly Sge[], needWrite: boolean): ResolvedSgl | null {
  if (sgList.length === 0) return EMPTY_SGL
  const views: Uint8Array[] = []
  let length = 0
  for (const sge of sgList) {
    if (sge.length === 0) continue
    const v = table.local(pd, sge.lkey, sge.addr, sge.length, needWrite)
    if (v === null) return null
    views.push(v)
    length += v.length
  }
  return { views, length }
}

/**
 * Appends to `out` views covering [offset, offset + length) of the list's
 * concatenation; returns how many views were appended.
 */
export function gatherViews(sgl: ResolvedSgl, offset: number, length: number, out: Uint8Array[]): number {
  let n = 0
  let skip = offset
  let left = length
  for (const v of sgl.views) {
    if (left === 0) break
    if (skip >= v.length) {
      skip -= v.length
      continue
    }
    const take = Math.min(v.length - skip, left)
    out.push(skip === 0 && take === v.length ? v : v.subarray(skip, skip + take))
    n++
    left -= take
    skip = 0
  }
  return n
}

/** Copies `src` into the list's concatenation at `offset`; the caller has checked that it fits. */
export function scatter(sgl: ResolvedSgl, offset: number, src: Uint8Array): void {
  if (sgl.views.length === 1) {
    sgl.views[0]!.set(src, offset)
    return
  }
  let skip = offset
  let from = 0
  for (const v of sgl.views) {
    if (from === src.length) return
    if (skip >= v.length) {
      skip -= v.length
      continue
    }
    const take = Math.min(v.length - skip, src.length - from)
    v.set(from === 0 && take === src.length ? src : src.subarray(from, from + take), skip)
    from += take
    skip = 0
  }
}

/** Copies the list's bytes [offset, offset+length) into one new buffer (inline data, atomics). */
export function gatherCopy(sgl: ResolvedSgl, offset: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  const views: Uint8Array[] = []
  gatherViews(sgl, offset, length, views)
  let at = 0
  for (const v of views) {
    out.set(v, at)
    at += v.length
  }
  return out
}
