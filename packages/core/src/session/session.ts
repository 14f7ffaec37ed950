/**
 * A session: RC QPs that share one remote and one set of frozen parameters.
 * Each QP keeps its own QoS. Events: 'qp-added', 'qp-removed', 'qp-failed' (QpFailure),
 * 'qp-replaced' (QpFailure, new QP), 'closed', 'error'.
 */
import { TypedEventEmitter } from '../typed-events.js'
import { InvalidArgumentError, SessionClosedError, QpNotFoundError, isRdmaError } from '../errors.js'
import { QpState } from '@rdma-session/provider-interface'
import type { RemoteRegion, MemorySlice } from '../memory-region.js'
import type { QueuePair } from '../queue-pair.js'
import type { WorkCompletion } from '@rdma-session/provider-interface'
import { QpStats, type QpStatsSnapshot } from '../stats.js'
import type { SessionParams } from './params.js'
import type { PeerChannel } from './peer-channel.js'
import { endpointKey, type EndpointRecord, type QpSpec } from './records.js'
import { stripe, type StripeOptions, type StripeResult } from './striping.js'
import { Autoscaler, type AutoscaleOptions } from './autoscaler.js'
import type { JoinTokenOptions } from '../control/join-token.js'
import { FailureLog, QP_FAILURE_POLICIES, failureReason, type QpFailure, type QpFailurePolicy } from './qp-failures.js'

/** What a session needs from its manager. */
export interface SessionOwner {
  addQpsTo(session: Session, specs: readonly QpSpec[]): Promise<QueuePair[]>
  removeQp(session: Session, qp: QueuePair, notifyPeer: boolean): Promise<void>
  closeSession(session: Session, reason: string, notifyPeer: boolean): Promise<void>
  rekey(session: Session): Promise<void>
  createJoinToken(session: Session, options?: JoinTokenOptions): string
  /** A QP of the session entered ERR on its own (`detectedBy` 'local'), or the peer said its end did. */
  qpFailed(session: Session, qp: QueuePair, reason: string, detectedBy: 'local' | 'peer'): Promise<void>
}

export interface SessionStats {
  /** Totals; `qpsFailed` counts every failed QP, `qpsReplaced` those a replacement took the place of. */
  readonly session: QpStatsSnapshot & { readonly qps: number; readonly qpsFailed: number; readonly qpsReplaced: number }
  readonly qps: ReadonlyArray<QpStatsSnapshot & { readonly qpn: number; readonly class: string }>
  /** The most recent QP failures (up to 32), oldest first: what failed, who saw it, what was done. */
  readonly failures: readonly QpFailure[]
}

/** An error a QP of the session reported (a failed completion, a lost connection), with the QP it came from. */
export type SessionQpError = Error & { readonly qpn: number; readonly completion: WorkCompletion | undefined }

/** A session's events and their listeners' arguments. 'error' is emitted only when someone listens. */
export interface SessionEvents {
  'qp-added': [qp: QueuePair]
  'qp-removed': [qp: QueuePair]
  /** A QP failed (a fatal completion or a lost peer QP): what failed and what the session does about it. */
  'qp-failed': [failure: QpFailure]
  /** A replacement QP is connected in place of a failed one. */
  'qp-replaced': [failure: QpFailure, qp: QueuePair]
  closed: [reason: string]
  error: [err: SessionQpError]
}

export class Session extends TypedEventEmitter<SessionEvents> {
  readonly id: string
  readonly remote: EndpointRecord
  readonly params: SessionParams
  /** True on the side that created the session. */
  readonly initiator: boolean
  /** Regions the peer exposed when the session was created, by name. */
  readonly remoteRegions: ReadonlyMap<string, RemoteRegion>
  /** @internal */ readonly peer: PeerChannel
  /** @internal */ readonly owner: SessionOwner
  /** Key epoch (raised by rekey). */
  epoch = 0
  readonly #qps = new Map<number, QueuePair>()
  #retired = new QpStats()
  #closed = false
  readonly #autoscalers = new Set<Autoscaler>()
  readonly #failures = new FailureLog()
  /** QPs that reported an error this turn, with the reason to record if they turn out failed. */
  readonly #suspects = new Map<QueuePair, { reason: string; isStatus: boolean }>()
  #replaced = 0
  #qpFailurePolicy: QpFailurePolicy = 'replace'

  constructor(init: { id: string; remote: EndpointRecord; params: SessionParams; initiator: boolean; peer: PeerChannel; owner: SessionOwner; remoteRegions: Record<string, RemoteRegion> }) {
    super()
    this.id = init.id
    this.remote = Object.freeze({ ...init.remote })
    this.params = init.params
    this.initiator = init.initiator
    this.peer = init.peer
    this.owner = init.owner
    this.remoteRegions = new Map(Object.entries(init.remoteRegions))
  }

  /**
   * What happens when a QP fails (see QpFailurePolicy): 'replace' (default) or 'remove'. Both
   * ends always remove the failed pair; the initiator's policy decides whether it is replaced.
   */
  get qpFailurePolicy(): QpFailurePolicy {
    return this.#qpFailurePolicy
  }
  set qpFailurePolicy(policy: QpFailurePolicy) {
    if (!QP_FAILURE_POLICIES.includes(policy)) throw new InvalidArgumentError(`qpFailurePolicy must be one of ${QP_FAILURE_POLICIES.join(', ')}, got ${String(policy)}`)
    this.#qpFailurePolicy = policy
  }

  /** True while `qp` is one of this session's QPs. */
  has(qp: QueuePair): boolean {
    return this.#qps.get(qp.qpn) === qp
  }

  /** The session's QPs, in the order they were added. */
  get qps(): QueuePair[] {
    return [...this.#qps.values()]
  }
  get size(): number {
    return this.#qps.size
  }
  get closed(): boolean {
    return this.#closed
  }
  /** `address:port` of the remote, as sessions.query() matches it. */
  get remoteKey(): string {
    return endpointKey(this.remote)
  }

  qp(qpn: number): QueuePair {
    const qp = this.#qps.get(qpn)
    if (qp === undefined) throw new QpNotFoundError(qpn, this.id)
    return qp
  }

  /** QPs whose QoS class is `className` (all QPs when undefined). */
  qpsOfClass(className?: string): QueuePair[] {
    return this.qps.filter((qp) => className === undefined || qp.qos.className === className)
  }

  /** Adds QPs to this session (same as sessions.addQps(session.id, specs)). */
  addQps(specs: readonly QpSpec[]): Promise<QueuePair[]> {
    this.assertOpen()
    return this.owner.addQpsTo(this, specs)
  }

  /** Removes one QP: the peer removes its end, outstanding WRs are flushed. */
  removeQp(qp: QueuePair | number): Promise<void> {
    this.assertOpen()
    return this.owner.removeQp(this, typeof qp === 'number' ? this.qp(qp) : qp, true)
  }

  /** Moves every QP to a new key epoch (encrypted sessions). */
  rekey(): Promise<void> {
    this.assertOpen()
    return this.owner.rekey(this)
  }

  /**
   * A token that lets another connection or process (on this host) take part in
   * this session: `ctx.join(url, { auth, token })`. Single-use, with an expiry,
   * a scope and a QP budget; bound to the session secret (sessions created over the control plane or encrypted).
   */
  createJoinToken(options?: JoinTokenOptions): string {
    return this.owner.createJoinToken(this, options)
  }

  /** Closes every QP (flushing their WRs), tells the peer, and forgets the session. */
  close(reason = 'closed by application'): Promise<void> {
    return this.owner.closeSession(this, reason, true)
  }

  /** Writes `local` to `remote`, striped over the QPs of a class. */
  write(local: MemorySlice, remote: RemoteRegion, options: StripeOptions = {}): Promise<StripeResult> {
    this.assertOpen()
    return stripe('write', () => this.qpsOfClass(options.class), local, remote, options)
  }

  /** Reads `remote` into `local`, striped over the QPs of a class. */
  read(local: MemorySlice, remote: RemoteRegion, options: StripeOptions = {}): Promise<StripeResult> {
    this.assertOpen()
    return stripe('read', () => this.qpsOfClass(options.class), local, remote, options)
  }

  /** Adds QPs by itself while the session is below a throughput threshold and its QPs are saturated. */
  autoscale(options: AutoscaleOptions): Autoscaler {
    this.assertOpen()
    const scaler = new Autoscaler(this, options, () => this.#autoscalers.delete(scaler))
    this.#autoscalers.add(scaler)
    return scaler
  }

  stats(): SessionStats {
    const qps = this.qps
    const total = QpStats.sum([this.#retired, ...qps.map((q) => q.stats)])
    return {
      session: { ...total.snapshot(), qps: qps.length, qpsFailed: this.#failures.total, qpsReplaced: this.#replaced },
      qps: qps.map((q) => ({ qpn: q.qpn, class: q.qos.className, ...q.stats.snapshot() })),
      failures: this.#failures.snapshot(),
    }
  }

  // ---- used by the session manager

  /** @internal */
  adopt(qp: QueuePair): void {
    this.#qps.set(qp.qpn, qp)
    qp.onError = (err: Error, wc?: WorkCompletion) => {
      this.#suspectFailure(qp, err)
      this.#reportError(err, qp, wc)
    }
    this.emit('qp-added', qp)
  }

  /** @internal Records a failure and emits 'qp-failed'. */
  noteFailure(f: QpFailure): QpFailure {
    this.#failures.add(f)
    this.emit('qp-failed', { ...f })
    return f
  }

  /** @internal A replacement for a failed QP is connected. */
  noteReplaced(f: QpFailure, qp: QueuePair): void {
    f.action = 'replaced'
    f.replacedBy = qp.qpn
    this.#replaced++
    this.emit('qp-replaced', { ...f }, qp)
  }

  /** @internal */
  release(qp: QueuePair): boolean {
    if (!this.#qps.delete(qp.qpn)) return false
    this.#retired = QpStats.sum([this.#retired, qp.stats])
    this.emit('qp-removed', qp)
    return true
  }

  /** @internal */
  markClosed(reason: string): boolean {
    if (this.#closed) return false
    this.#closed = true
    for (const s of this.#autoscalers) s.stop()
    return true
  }

  /** @internal */
  emitClosed(reason: string): void {
    this.emit('closed', reason)
  }

  assertOpen(): void {
    if (this.#closed) throw new SessionClosedError(this.id)
  }

  /**
   * A QP in ERR that the application did not close has failed: once the errors delivered with it
   * are in (a failed WR's status is preferred to the provider's fatal event as the reason), both
   * ends drop the pair and the initiator may replace it.
   */
  #suspectFailure(qp: QueuePair, err: Error): void {
    const status = (err as { status?: unknown }).status
    const known = this.#suspects.get(qp)
    if (known !== undefined) {
      if (!known.isStatus && typeof status === 'string') this.#suspects.set(qp, { reason: status, isStatus: true })
      return
    }
    this.#suspects.set(qp, { reason: failureReason(err), isStatus: typeof status === 'string' })
    setImmediate(() => {
      const { reason } = this.#suspects.get(qp)!
      this.#suspects.delete(qp)
      if (this.has(qp) && !this.#closed && qp.state === QpState.ERR) void this.owner.qpFailed(this, qp, reason, 'local')
    })
  }

  #reportError(err: Error, qp: QueuePair, wc?: WorkCompletion): void {
    // 'error' is only emitted to listeners: an unhandled 'error' event must not crash the app.
    if (this.listenerCount('error') > 0) this.emit('error', Object.assign(err, { qpn: qp.qpn, completion: wc }))
    else if (!isRdmaError(err)) throw err
  }
}
