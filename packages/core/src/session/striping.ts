/** Splits one large transfer into chunks and spreads them over several QPs; faster QPs take more chunks. */
import { InvalidArgumentError } from '../errors.js'
import type { MemorySlice, RemoteRegion } from '../memory-region.js'
import type { QueuePair } from '../queue-pair.js'
import { QpState } from '@rdma-session/provider-interface'

export interface StripeOptions {
  /** Only QPs of this QoS class (default: every QP of the session). */
  readonly class?: string
  /** Bytes per chunk; default 64 KiB. */
  readonly chunkSize?: number
  /** Chunks in flight per QP; default min(8, the QP's send queue depth). */
  readonly depthPerQp?: number
}

export interface StripeResult {
  readonly bytes: number
  readonly chunks: number
  /** Chunks each QP carried, by QPN. */
  readonly chunksPerQp: Readonly<Record<number, number>>
}

/**
 * `qpsOf()` is asked again as chunks complete, so QPs added meanwhile (by an
 * autoscaler) join the transfer.
 */
export async function stripe(kind: 'write' | 'read', qpsOf: () => QueuePair[], local: MemorySlice, remote: RemoteRegion, options: StripeOptions): Promise<StripeResult> {
  const usableQps = (): QueuePair[] => qpsOf().filter((qp) => qp.state === QpState.RTS && !qp.closed)
  if (usableQps().length === 0) throw new InvalidArgumentError(`no QP in RTS${options.class === undefined ? '' : ` of class '${options.class}'`} to stripe over`)
  if (local.length > remote.length) throw new InvalidArgumentError(`${local.length} bytes do not fit the remote region of ${remote.length} bytes`)
  const chunkSize = options.chunkSize ?? 65536
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new InvalidArgumentError(`chunkSize must be a positive integer, got ${String(chunkSize)}`)
  const chunks = Math.ceil(local.length / chunkSize)
  const perQp: Record<number, number> = {}
  let next = 0
  let failure: unknown = null

  const lane = async (qp: QueuePair): Promise<void> => {
    while (failure === null && next < chunks) {
      const i = next++
      const off = i * chunkSize
      const len = Math.min(chunkSize, local.length - off)
      const part = local.slice(off, len)
      const target = { addr: remote.addr + off, rkey: remote.rkey, length: len }
      try {
        await (kind === 'write' ? qp.write(part, target) : qp.read(part, target))
        perQp[qp.qpn] = (perQp[qp.qpn] ?? 0) + 1
        addLanes()
      } catch (err) {
        failure ??= err
      }
    }
  }

  const lanes: Promise<void>[] = []
  const laned = new Set<QueuePair>()
  const addLanes = (): void => {
    const fresh = usableQps().filter((qp) => !laned.has(qp))
    for (const qp of fresh) laned.add(qp)
    // Lanes start interleaved across QPs, so the first chunks spread over every QP.
    const depthOf = (qp: QueuePair): number => options.depthPerQp ?? Math.min(8, qp.caps.maxSendWr)
    const maxDepth = Math.max(0, ...fresh.map(depthOf))
    for (let d = 0; d < maxDepth; d++) {
      for (const qp of fresh) if (d < depthOf(qp)) lanes.push(lane(qp))
    }
  }
  addLanes()
  // Lanes added while waiting are awaited too.
  for (let awaited = 0; awaited < lanes.length; ) {
    const upTo = lanes.length
    await Promise.all(lanes.slice(awaited, upTo))
    awaited = upTo
  }
  if (failure !== null) throw failure
  return { bytes: local.length, chunks, chunksPerQp: perQp }
}
