/**
 * Which peer account (PeerAccount, by authenticated identity) each session and QP a peer made us
 * create is charged to, so closing it gives the quota back exactly once.
 */
import { estimateQpBytes, type PeerAccount, type QuotaUse } from '../control/peer-quota.js'
import type { QueuePair } from '../queue-pair.js'
import type { QpSpec } from './records.js'

const NOTHING: QuotaUse = Object.freeze({ qps: 0, sessions: 0, memoryBytes: 0 })

export class QuotaCharges {
  readonly #qps = new Map<QueuePair, { account: PeerAccount; bytes: number }>()
  readonly #sessions = new Map<string, PeerAccount>()

  /** Reserves `specs` QPs (and a session when `session`) on `account`, or throws ERR_QUOTA; no account: nothing. */
  reserve(account: PeerAccount | undefined, specs: readonly (QpSpec | undefined)[], session: boolean): QuotaUse {
    if (account === undefined) return NOTHING
    let memoryBytes = 0
    for (const s of specs) memoryBytes += estimateQpBytes(s?.caps)
    const use = { qps: specs.length, sessions: session ? 1 : 0, memoryBytes }
    account.reserve(use)
    return use
  }

  /** Gives back a reservation whose QPs were never made. */
  rollback(account: PeerAccount | undefined, use: QuotaUse): void {
    account?.release(use)
  }

  /** Records the QPs (and session) a reservation was for: each is given back when it goes. */
  adopt(account: PeerAccount | undefined, qps: readonly QueuePair[], specs: readonly (QpSpec | undefined)[], sessionId: string | null): void {
    if (account === undefined) return
    qps.forEach((qp, i) => this.#qps.set(qp, { account, bytes: estimateQpBytes(specs[i]?.caps) }))
    if (sessionId !== null) this.#sessions.set(sessionId, account)
  }

  releaseQp(qp: QueuePair): void {
    const c = this.#qps.get(qp)
    if (c === undefined) return
    this.#qps.delete(qp)
    c.account.release({ qps: 1, sessions: 0, memoryBytes: c.bytes })
  }

  releaseSession(sessionId: string): void {
    const a = this.#sessions.get(sessionId)
    if (a === undefined) return
    this.#sessions.delete(sessionId)
    a.release({ qps: 0, sessions: 1, memoryBytes: 0 })
  }
}
