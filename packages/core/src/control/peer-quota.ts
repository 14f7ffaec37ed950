/**
 * Per-peer quotas of a control-plane server: how many QPs, sessions and bytes of QP memory one
 * authenticated identity may make us hold at once, over all its connections and source
 * addresses. Going past one fails with ERR_QUOTA naming the limit; what closes is given back.
 */
import { InvalidArgumentError, QuotaError } from '../errors.js'
import type { QpCapsRecord } from '../session/records.js'

export interface PeerQuotaLimits {
  /** QPs one identity may hold. Default 4096. */
  readonly qps?: number
  /** Sessions one identity may hold. Default 256. */
  readonly sessions?: number
  /** Estimated QP memory (estimateQpBytes) one identity may hold. Default 512 MiB. */
  readonly memoryBytes?: number
}

export const DEFAULT_PEER_QUOTA: Required<PeerQuotaLimits> = Object.freeze({ qps: 4096, sessions: 256, memoryBytes: 512 * 1024 * 1024 })

export interface QuotaUse {
  readonly qps: number
  readonly sessions: number
  readonly memoryBytes: number
}

/** Fixed cost of a QP (state, CQ share, scheduler flow, responder and requester state). */
const QP_BASE_BYTES = 16 * 1024
/** Per work-queue entry a provider may hold (WQE, its SGE list, completion slot). */
const WQE_BYTES = 256

/** What a QP the peer asks for costs us, roughly: a base plus its queue depths and inline buffer. */
export function estimateQpBytes(caps: QpCapsRecord | undefined): number {
  const send = caps?.maxSendWr ?? 128
  const recv = caps?.maxRecvWr ?? 128
  return QP_BASE_BYTES + (send + recv) * WQE_BYTES + send * (caps?.maxInlineData ?? 64)
}

const LIMIT_NAMES = { qps: 'qps', sessions: 'sessions', memoryBytes: 'memoryBytes' } as const

/** The usage of one identity; reserve() takes all of a request or nothing. */
export class PeerAccount {
  readonly #used = { qps: 0, sessions: 0, memoryBytes: 0 }

  constructor(readonly identity: string, readonly limits: Required<PeerQuotaLimits>) {}

  get used(): QuotaUse {
    return { ...this.#used }
  }

  /** Takes `use` or throws ERR_QUOTA naming the first limit it would pass (taking nothing). */
  reserve(use: QuotaUse): void {
    for (const k of Object.keys(LIMIT_NAMES) as (keyof QuotaUse)[]) {
      if (this.#used[k] + use[k] > this.limits[k]) {
        throw new QuotaError(`peer ${this.identity} would hold ${this.#used[k] + use[k]} ${k} (${this.#used[k]} in use, ${use[k]} more asked); its quota is ${this.limits[k]} (listen({ quota: { ${k} } }))`, { limit: k, peer: this.identity, used: this.#used[k], requested: use[k], max: this.limits[k] })
      }
    }
    this.#used.qps += use.qps
    this.#used.sessions += use.sessions
    this.#used.memoryBytes += use.memoryBytes
  }

  release(use: QuotaUse): void {
    this.#used.qps = Math.max(0, this.#used.qps - use.qps)
    this.#used.sessions = Math.max(0, this.#used.sessions - use.sessions)
    this.#used.memoryBytes = Math.max(0, this.#used.memoryBytes - use.memoryBytes)
  }
}

/** The accounts of a server's peers, by authenticated identity (never by source address). */
export class PeerQuotas {
  readonly limits: Required<PeerQuotaLimits>
  readonly #accounts = new Map<string, PeerAccount>()

  constructor(limits: PeerQuotaLimits = {}) {
    this.limits = Object.freeze({ ...DEFAULT_PEER_QUOTA, ...limits })
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isInteger(v) || v < 0) throw new InvalidArgumentError(`quota.${k} must be a non-negative integer, got ${String(v)}`, { attribute: `quota.${k}` })
    }
  }

  account(identity: string): PeerAccount {
    let a = this.#accounts.get(identity)
    if (a === undefined) {
      a = new PeerAccount(identity, this.limits)
      this.#accounts.set(identity, a)
    }
    return a
  }
}
