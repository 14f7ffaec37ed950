/**
 * CM timing as Linux drivers/infiniband/core/cm.c computes it: IBA times are 4.096 µs · 2^t,
 * approximated in milliseconds as 2^(t-8) (at least 1 ms). A REQ (or DREQ) is resent after
 * 2 · packet lifetime + the remote's CM response timeout, up to Max CM Retries times; after an
 * MRA the wait is the MRA's service timeout + the packet lifetime; a REP is resent after the
 * active side's local CM response timeout, up to the REQ's Max CM Retries.
 */

export function ibaTimeToMs(t: number): number {
  return 2 ** Math.max(t - 8, 0)
}

/** The smallest IBA time whose ibaTimeToMs is at least `ms` (0..31). */
export function msToIbaTime(ms: number): number {
  let t = 8
  while (t < 31 && ibaTimeToMs(t) < ms) t++
  return ms <= 1 ? 8 : t
}

export interface CmTimingOptions {
  /** IBA packet lifetime of the path (rdma_cm on RoCE: 16, ~256 ms). */
  readonly packetLifeTime?: number
  /** Our CM response timeout as announced in REQs (rdma_cm: 20, ~4 s), IBA encoding. */
  readonly responseTimeout?: number
  /** Max CM retries announced in REQs (rdma_cm: 15). */
  readonly maxRetries?: number
  /** Bounds on any wait a peer's MAD can ask for (ms): a hostile REQ or MRA must not pin state. */
  readonly minWaitMs?: number
  readonly maxWaitMs?: number
  /** How long a closed connection's IDs are kept to answer duplicates (ms). */
  readonly timewaitMs?: number
  /** Service timeout we announce in MRAs (IBA encoding; rdma_cm: 24). */
  readonly mraServiceTimeout?: number
}

export interface CmTiming {
  readonly packetLifeTime: number
  readonly responseTimeout: number
  readonly maxRetries: number
  readonly minWaitMs: number
  readonly maxWaitMs: number
  readonly timewaitMs: number
  readonly mraServiceTimeout: number
}

export function resolveCmTiming(o: CmTimingOptions = {}): CmTiming {
  const t: CmTiming = {
    packetLifeTime: o.packetLifeTime ?? 16,
    responseTimeout: o.responseTimeout ?? 20,
    maxRetries: o.maxRetries ?? 15,
    minWaitMs: o.minWaitMs ?? 10,
    maxWaitMs: o.maxWaitMs ?? 70_000,
    timewaitMs: o.timewaitMs ?? 2_000,
    mraServiceTimeout: o.mraServiceTimeout ?? 24,
  }
  for (const k of ['packetLifeTime', 'responseTimeout', 'mraServiceTimeout'] as const) {
    if (!Number.isInteger(t[k]) || t[k] < 0 || t[k] > 31) throw new RangeError(`cm timing ${k} must be an IBA time 0..31, got ${String(t[k])}`)
  }
  if (!Number.isInteger(t.maxRetries) || t.maxRetries < 0 || t.maxRetries > 15) throw new RangeError(`cm timing maxRetries must be 0..15, got ${String(t.maxRetries)}`)
  if (!(t.minWaitMs > 0 && t.maxWaitMs >= t.minWaitMs)) throw new RangeError('cm timing needs 0 < minWaitMs <= maxWaitMs')
  return t
}

export function clampWait(t: CmTiming, ms: number): number {
  return Math.min(t.maxWaitMs, Math.max(t.minWaitMs, ms))
}

/** Wait for the answer to our REQ/DREQ before resending it. */
export function requestWaitMs(t: CmTiming, remoteResponseTimeout: number): number {
  return clampWait(t, 2 * ibaTimeToMs(t.packetLifeTime) + ibaTimeToMs(remoteResponseTimeout))
}

/** Wait after an MRA with `serviceTimeout`. */
export function mraWaitMs(t: CmTiming, serviceTimeout: number): number {
  return clampWait(t, ibaTimeToMs(serviceTimeout) + ibaTimeToMs(t.packetLifeTime))
}
