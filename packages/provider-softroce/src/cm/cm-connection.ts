/**
 * One CM connection and its state machine (IBTA vol. 1, 12.9; Linux cm.c, simplified):
 *
 *   active:  REQ_SENT ─MRA→ MRA_REQ_RCVD ─REP→ (QP RTR/RTS, RTU sent) ESTABLISHED
 *   passive: REQ_RCVD ─dup REQ→ MRA_REQ_SENT ─accept→ (QP RTR/RTS) REP_SENT ─RTU→ ESTABLISHED
 *   both:    ESTABLISHED ─disconnect→ DREQ_SENT ─DREP→ TIMEWAIT;  ESTABLISHED ─DREQ→ (DREP sent) TIMEWAIT
 *
 * A REQ, REP or DREQ is resent when its answer does not come in time, up to the retries the
 * CM timing allows; a REQ or REP that runs out of retries is followed by a REJ (timeout). A REJ
 * ends the connection in any state before ESTABLISHED. In TIMEWAIT (and after a REJ) the IDs are
 * kept for a while, so a duplicate DREQ gets its DREP again and a duplicate REQ its REJ. A MAD
 * a state does not expect is dropped and counted (wrongState); nothing a peer sends throws.
 */
import { CmConnectionShell, InvalidArgumentError, cmQpToError, type RdmaError } from '@rdma-session/provider-interface'
import { ConnectionRefusedError, TimeoutError, type QueuePair } from '@rdma-session/core'
import type { AddressHandle } from '../ud/ud-qp.js'
import { MsgRef, PRIVATE_DATA, RejReason, type CmDreq, type CmMessage, type CmRej, type CmRep, type CmReq } from './cm-messages.js'
import type { CmCounters, CmDropReason } from './cm-drops.js'
import { mraWaitMs, requestWaitMs, type CmTiming } from './cm-timing.js'

export type CmState = 'REQ_SENT' | 'MRA_REQ_RCVD' | 'REQ_RCVD' | 'MRA_REQ_SENT' | 'REP_SENT' | 'ESTABLISHED' | 'DREQ_SENT' | 'TIMEWAIT' | 'REJ_SENT' | 'CLOSED'

/** What a connection needs from its CM. */
export interface CmHost {
  readonly timing: CmTiming
  readonly counters: CmCounters
  readonly localCaGuid: bigint
  send(peer: AddressHandle, msg: CmMessage, tid: bigint): void
  newTid(): bigint
  /** The connection entered TIMEWAIT/REJ_SENT (keep its IDs a while) or CLOSED (forget it). */
  settled(conn: CmConnection): void
}

/** Why a connection ended. */
export interface CmDisconnectInfo {
  /** 'local': we disconnected; 'remote': the peer's DREQ; 'rejected' / 'timeout' / 'closed' before it was established. */
  readonly by: 'local' | 'remote' | 'rejected' | 'timeout' | 'closed'
  readonly privateData: Uint8Array
}

const EMPTY = new Uint8Array(0)

interface Pending {
  readonly msg: CmMessage
  readonly tid: bigint
  waitMs: number
  retriesLeft: number
  readonly exhausted: () => void
}

/** Name of a REJ reason, for error messages. */
function rejName(reason: number): string {
  for (const [k, v] of Object.entries(RejReason)) if (v === reason) return k
  return `reason ${reason}`
}

export class CmConnection extends CmConnectionShell<CmDisconnectInfo> {
  readonly localCommId: number
  /** Where the peer's CM listens: its address and RoCE UDP port. */
  readonly peer: AddressHandle
  remoteCommId = 0
  state: CmState
  /** The RC QP of this connection (the passive side gets it at accept). */
  qp: QueuePair | null = null
  /** The peer's private data: a REQ's after rdma_cm's header (passive), a REP's (active). */
  privateData: Uint8Array = EMPTY
  /** The REQ (sent or received). */
  req: CmReq | null = null
  /** Transaction ID of the REQ/REP/RTU exchange. */
  tid: bigint
  /** When it was created (performance.now()): backlog eviction takes the oldest half-open one. */
  readonly createdAt = performance.now()
  readonly #host: CmHost
  #pending: Pending | null = null
  #timer: NodeJS.Timeout | null = null
  #lastSent: { msg: CmMessage; tid: bigint } | null = null
  #dreqTid = 0n
  #established!: { resolve: (c: CmConnection) => void; reject: (e: RdmaError) => void }
  readonly established: Promise<CmConnection>
  #disconnectDone: (() => void) | null = null
  /** The connection reached ESTABLISHED at some point (its QP is the application's). */
  wasEstablished = false
  /** Active side: what to do with the peer's REP (moves the QP to RTR/RTS); a thrown error rejects the connection. */
  onRep: ((rep: CmRep) => void) | null = null

  constructor(host: CmHost, role: 'active' | 'passive', localCommId: number, peer: AddressHandle, tid: bigint, state: CmState, local: { address: string; port: number }, remote: { address: string; port: number }) {
    super(role, local, remote)
    this.#host = host
    this.localCommId = localCommId
    this.peer = peer
    this.tid = tid
    this.state = state
    this.established = new Promise((resolve, reject) => (this.#established = { resolve, reject }))
    this.established.catch(() => {})
  }

  #markEstablished(): void {
    this.wasEstablished = true
    this.#established.resolve(this)
  }

  get halfOpen(): boolean {
    return this.role === 'passive' && (this.state === 'REQ_RCVD' || this.state === 'MRA_REQ_SENT' || this.state === 'REP_SENT')
  }

  // ---- sending, with retries

  #send(msg: CmMessage, tid: bigint): void {
    this.#lastSent = { msg, tid }
    this.#host.send(this.peer, msg, tid)
  }

  #request(msg: CmMessage, tid: bigint, waitMs: number, retries: number, exhausted: () => void): void {
    this.#disarm()
    this.#send(msg, tid)
    this.#pending = { msg, tid, waitMs, retriesLeft: retries, exhausted }
    this.#arm(waitMs)
  }

  #arm(ms: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => this.#expired(), ms)
  }

  #disarm(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#pending = null
  }

  #expired(): void {
    this.#timer = null
    const p = this.#pending
    if (p === null) return this.#timewaitOver()
    if (p.retriesLeft <= 0) {
      this.#pending = null
      return p.exhausted()
    }
    p.retriesLeft--
    this.#host.counters.retransmits++
    this.#send(p.msg, p.tid)
    this.#arm(p.waitMs)
  }

  // ---- active side

  /** Sends the REQ and waits for REP (MRA stretches the wait). */
  startActive(req: CmReq, waitMs: number): void {
    this.req = req
    this.#request(req, this.tid, waitMs, this.#host.timing.maxRetries, () => {
      this.#reject(RejReason.TIMEOUT, MsgRef.REQ)
      this.#fail('timeout', new TimeoutError(`no REP from ${this.peer.address} for the connection request to port ${this.remote.port} after ${this.#host.timing.maxRetries + 1} tries`))
    })
  }

  // ---- passive side

  /** A duplicate of the REQ that created this connection. */
  duplicateReq(): void {
    if (this.state === 'REQ_RCVD' || this.state === 'MRA_REQ_SENT') {
      // The application has not decided yet: ask the peer for more time (Linux: an MRA on a duplicate).
      this.state = 'MRA_REQ_SENT'
      this.#send({ type: 'MRA', localCommId: this.localCommId, remoteCommId: this.remoteCommId, messageMraed: MsgRef.REQ, serviceTimeout: this.#host.timing.mraServiceTimeout, privateData: EMPTY }, this.tid)
    } else if (this.state === 'REJ_SENT' && this.#lastSent?.msg.type === 'REJ') {
      this.#send(this.#lastSent.msg, this.#lastSent.tid)
    } else {
      this.#host.counters.drop('wrongState')
    }
  }

  /** Accept: the QP is in RTS; send the REP and wait for the RTU. */
  accept(qp: QueuePair, rep: CmRep, waitMs: number, retries: number): void {
    this.qp = qp
    this.state = 'REP_SENT'
    this.#request(rep, this.tid, waitMs, retries, () => {
      this.#reject(RejReason.TIMEOUT, MsgRef.REP)
      this.#fail('timeout', new TimeoutError(`no RTU from ${this.peer.address} after ${retries + 1} REPs`))
    })
  }

  /** Refuse a REQ (CONSUMER_DEFINED by the application, or NO_RESOURCES when evicted). */
  rejectRequest(reason: number, privateData: Uint8Array = EMPTY): void {
    if (!this.halfOpen) return
    if (privateData.length > PRIVATE_DATA.REJ) privateData = privateData.subarray(0, PRIVATE_DATA.REJ)
    this.#reject(reason, this.state === 'REP_SENT' ? MsgRef.REP : MsgRef.REQ, privateData)
    this.#fail('rejected', new ConnectionRefusedError(this.target, `connection request rejected (${rejName(reason)})`, { rejReason: reason }))
  }

  // ---- received MADs (already matched to this connection by communication ID and source)

  handle(msg: CmMessage, tid: bigint): void {
    const drop = (r: CmDropReason): void => this.#host.counters.drop(r)
    switch (msg.type) {
      case 'REP':
        if (this.state === 'REQ_SENT' || this.state === 'MRA_REQ_RCVD') return this.#onRep(msg)
        // Our RTU was lost: send it again.
        if (this.role === 'active' && this.state === 'ESTABLISHED' && msg.localCommId === this.remoteCommId) return this.#sendRtu()
        return drop('wrongState')
      case 'MRA':
        if (this.state === 'REQ_SENT' && msg.messageMraed === MsgRef.REQ) {
          this.state = 'MRA_REQ_RCVD'
          if (this.#pending !== null) {
            this.#pending.waitMs = mraWaitMs(this.#host.timing, msg.serviceTimeout)
            this.#arm(this.#pending.waitMs)
          }
          return
        }
        return drop('wrongState')
      case 'RTU':
        if (this.state === 'REP_SENT') {
          this.#disarm()
          this.state = 'ESTABLISHED'
          this.#markEstablished()
          return
        }
        return drop('wrongState')
      case 'REJ':
        return this.#onRej(msg)
      case 'DREQ':
        return this.#onDreq(msg, tid)
      case 'DREP':
        if (this.state === 'DREQ_SENT') return this.#enterTimewait()
        return drop('wrongState')
      case 'REQ':
        return drop('wrongState')
    }
  }

  #onRep(rep: CmRep): void {
    this.#disarm()
    this.remoteCommId = rep.localCommId
    this.#repQpn = rep.localQpn
    this.privateData = rep.privateData
    try {
      this.onRep?.(rep)
    } catch (err) {
      this.#reject(RejReason.CONSUMER_DEFINED, MsgRef.REP)
      this.#fail('rejected', err as RdmaError)
      return
    }
    this.#sendRtu()
    this.state = 'ESTABLISHED'
    this.#markEstablished()
  }

  #sendRtu(): void {
    this.#send({ type: 'RTU', localCommId: this.localCommId, remoteCommId: this.remoteCommId, privateData: EMPTY }, this.tid)
  }

  #onRej(rej: CmRej): void {
    const before = this.state === 'REQ_SENT' || this.state === 'MRA_REQ_RCVD' || this.state === 'REP_SENT'
    if (before) {
      this.#disarm()
      this.#fail('rejected', new ConnectionRefusedError(this.target, `${this.peer.address} rejected the connection to rdma_cm port ${this.remote.port} (${rejName(rej.reason)})`, { rejReason: rej.reason, rejReasonName: rejName(rej.reason), privateData: rej.privateData }), rej.privateData)
      return
    }
    if (this.state === 'ESTABLISHED' || this.state === 'DREQ_SENT') {
      this.#disarm()
      cmQpToError(this.qp)
      this.#settle('remote', rej.privateData, 'TIMEWAIT')
      return
    }
    this.#host.counters.drop('wrongState')
  }

  #onDreq(dreq: CmDreq, tid: bigint): void {
    const drep = (): void => this.#send({ type: 'DREP', localCommId: this.localCommId, remoteCommId: this.remoteCommId, privateData: EMPTY }, tid)
    if (this.state === 'TIMEWAIT') return drep()
    // A DREQ in REP_SENT means the RTU was lost on the way: the peer was established.
    if (this.state === 'ESTABLISHED' || this.state === 'REP_SENT' || this.state === 'DREQ_SENT') {
      if (this.qp !== null && dreq.remoteQpn !== this.qp.qpn) return this.#host.counters.drop('badField')
      this.#disarm()
      drep()
      if (this.state === 'REP_SENT') this.#markEstablished()
      cmQpToError(this.qp)
      this.#settle('remote', dreq.privateData, 'TIMEWAIT')
      return
    }
    this.#host.counters.drop('wrongState')
  }

  // ---- local disconnect

  /** Sends a DREQ (resent until a DREP or the retries run out), moves the QP to ERR; resolves in TIMEWAIT. */
  disconnect(privateData: Uint8Array = EMPTY): Promise<void> {
    if (privateData.length > PRIVATE_DATA.DREQ) return Promise.reject(new InvalidArgumentError(`DREQ private data is at most ${PRIVATE_DATA.DREQ} bytes, got ${privateData.length}`))
    if (this.state !== 'ESTABLISHED') {
      if (this.halfOpen) this.rejectRequest(RejReason.CONSUMER_DEFINED)
      return this.disconnected.then(() => {})
    }
    const done = new Promise<void>((resolve) => (this.#disconnectDone = resolve))
    this.state = 'DREQ_SENT'
    cmQpToError(this.qp)
    this.#dreqTid = this.#host.newTid()
    const waitMs = requestWaitMs(this.#host.timing, this.#host.timing.responseTimeout)
    this.#request({ type: 'DREQ', localCommId: this.localCommId, remoteCommId: this.remoteCommId, remoteQpn: this.#remoteQpn(), privateData }, this.#dreqTid, waitMs, this.#host.timing.maxRetries, () => this.#enterTimewait())
    this.#settleInfo = { by: 'local', privateData }
    return done
  }

  #settleInfo: CmDisconnectInfo | null = null

  #remoteQpn(): number {
    return this.role === 'active' ? (this.#repQpn ?? 0) : (this.req?.localQpn ?? 0)
  }

  #repQpn: number | null = null

  #enterTimewait(): void {
    this.#disarm()
    const info = this.#settleInfo ?? { by: 'local' as const, privateData: EMPTY }
    this.#settle(info.by, info.privateData, 'TIMEWAIT')
  }

  // ---- endings

  #reject(reason: number, ref: number, privateData: Uint8Array = EMPTY): void {
    const ari = reason === RejReason.TIMEOUT ? guidBytes(this.#host.localCaGuid) : EMPTY
    this.#disarm()
    this.#send({ type: 'REJ', localCommId: this.localCommId, remoteCommId: this.remoteCommId, messageRejected: ref, reason, ari, privateData }, this.tid)
  }

  #fail(by: CmDisconnectInfo['by'], err: RdmaError, privateData: Uint8Array = EMPTY): void {
    this.#established.reject(err)
    cmQpToError(this.qp)
    this.#settle(by, privateData, by === 'rejected' && this.#lastSent?.msg.type === 'REJ' ? 'REJ_SENT' : 'TIMEWAIT')
  }

  #settle(by: CmDisconnectInfo['by'], privateData: Uint8Array, next: 'TIMEWAIT' | 'REJ_SENT'): void {
    this.state = next
    this.resolveDisconnected({ by, privateData })
    this.#disconnectDone?.()
    this.#disconnectDone = null
    this.#arm(this.#host.timing.timewaitMs)
    // Keeping the IDs for duplicates must not keep the process alive.
    this.#timer?.unref()
    this.#host.settled(this)
  }

  #timewaitOver(): void {
    this.close()
  }

  /** Forgets the connection at once (no MAD sent): CM shutdown, eviction, timewait over. */
  close(): void {
    if (this.state === 'CLOSED') return
    const wasOpen = this.state !== 'TIMEWAIT' && this.state !== 'REJ_SENT'
    this.#disarm()
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.state = 'CLOSED'
    if (wasOpen) {
      this.#established.reject(new ConnectionRefusedError(this.target, 'the connection manager was closed'))
      cmQpToError(this.qp)
      this.resolveDisconnected({ by: 'closed', privateData: EMPTY })
      this.#disconnectDone?.()
    }
    this.#host.settled(this)
  }
}

function guidBytes(guid: bigint): Uint8Array {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, guid)
  return b
}
