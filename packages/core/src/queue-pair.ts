/**
 * A reliable-connected queue pair: checked state transitions, raw verbs-style
 * posting, promise-returning operations (one promise per signaled WR) and
 * per-QP stats.
 */
import { Opcode, QpState, RecvOpcode, WcStatus, type CompletionOpcode } from '@rdma-session/provider-interface'
import type { CompletionOwner, CompletionQueue } from './completion-queue.js'
import { ClosedError, ProviderContractError, UnsupportedError, InvalidArgumentError, QpStateError, QueueFullError, WorkCompletionError, type ContractWr } from './errors.js'
import { MemorySlice, type RemoteRegion } from './memory-region.js'
import { canPostRecv, canPostSend, checkQpTransition } from '@rdma-session/provider-interface'
import type { ProviderQp, QpAttrs, QpEvent, QpModifyAttrs, QpQos, RecvWorkRequest, SendWorkRequest, Sge, WorkCompletion } from '@rdma-session/provider-interface'
import { QpStats } from './stats.js'
import { WorkTracker, type PendingWr, type Taken } from './work-tracker.js'
import { performance } from 'node:perf_hooks'

export interface QpCaps {
  readonly maxSendWr: number
  readonly maxRecvWr: number
  readonly maxSendSge: number
  readonly maxRecvSge: number
  readonly maxInlineData: number
}

/** A send WR as users post it: like the SPI's, with slices instead of raw SGEs allowed. */
export interface PostSendRequest extends Omit<SendWorkRequest, 'wrId' | 'sgList' | 'signaled'> {
  readonly wrId?: number
  readonly sgList?: readonly (Sge | MemorySlice)[]
  readonly signaled?: boolean
}
export interface PostRecvRequest {
  readonly wrId?: number
  readonly sgList: readonly (Sge | MemorySlice)[]
}

/** What the local end of a connection tells the remote end. */
export interface QpEndpointInfo {
  readonly qpn: number
  readonly psn: number
}

/** Gives a provider's completion (core's after `poll`, see the SPI rules) the application's wrId back. */
function withWrId(wc: WorkCompletion, wrId: number): WorkCompletion {
  if (wc.wrId !== wrId) (wc as { wrId: number }).wrId = wrId
  return wc
}

const SETTLE_TIMEOUT_MS = 5000
const now = (): number => performance.now()

const NO_SGES: readonly Sge[] = Object.freeze([])

/** Settled PendingWr objects a QP keeps for reuse, at most. */
const FREE_PENDING_MAX = 256

/** The SGE list as the provider takes it: the same array when it holds no slices. */
function toSges(list: readonly (Sge | MemorySlice)[] | undefined): readonly Sge[] {
  if (list === undefined) return NO_SGES
  for (let i = 0; i < list.length; i++) if (list[i] instanceof MemorySlice) return slicesToSges(list)
  return list as readonly Sge[]
}

/** Apart from toSges, which then stays small enough to be inlined where WRs are posted. */
function slicesToSges(list: readonly (Sge | MemorySlice)[]): Sge[] {
  return list.map((x) => (x instanceof MemorySlice ? x.toSge() : x))
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** The WR object a QP fills for each raw post (made on the first one). */
function newPostWr(): Mutable<SendWorkRequest> {
  return {
    wrId: 0, opcode: Opcode.SEND, sgList: NO_SGES, signaled: true, imm: undefined, remoteAddr: undefined, rkey: undefined,
    compareAdd: undefined, swap: undefined, inlineData: undefined,
  }
}

/** How a contract error names a pending WR. */
function contractWr(p: PendingWr): ContractWr {
  return { opcode: p.opcode, signaled: p.signaled, wrId: p.resolve === null ? p.userWrId : null, post: p.id }
}

function payloadBytes(sgList: readonly Sge[]): number {
  let n = 0
  for (let i = 0; i < sgList.length; i++) n += sgList[i]!.length
  return n
}

export class QueuePair implements CompletionOwner {
  readonly provider: ProviderQp
  readonly qpn: number
  readonly sendCq: CompletionQueue
  readonly recvCq: CompletionQueue
  readonly caps: QpCaps
  readonly qos: QpQos
  readonly stats = new QpStats()
  /** The starting PSN this QP will send with, chosen at random. */
  readonly localPsn: number
  /** The QPN of the connected peer QP, once connected. */
  remoteQpn: number | null = null
  /** Called when the provider reports an async event or a WR fails. Set by the owner (session). */
  onError: ((err: Error, wc?: WorkCompletion) => void) | null = null

  readonly #sends = new WorkTracker('send')
  readonly #recvs = new WorkTracker('recv')
  /** Set once the provider broke the SPI on this QP (see #breakContract). */
  #contractBroken = false
  #backlog: { wr: SendWorkRequest; pending: PendingWr }[] | null = null
  #nextId = 1
  /**
   * Settled PendingWr objects, reused for later WRs: a new object per WR (with a boxed double
   * for postedAt) was most of the garbage core made per WR, and so of its share of GC time.
   */
  readonly #freePending: PendingWr[] = []
  #postWr: Mutable<SendWorkRequest> | null = null
  #closed: Promise<void> | null = null
  #drained: (() => void) | null = null

  readonly #onClosed: ((qp: QueuePair) => void) | null

  readonly #features: { readonly atomics: boolean; readonly immediate: boolean; readonly provider: string }
  /** The provider does every opcode (no #checkOpcode needed). */
  readonly #allOpcodes: boolean

  constructor(provider: ProviderQp, sendCq: CompletionQueue, recvCq: CompletionQueue, caps: QpCaps, qos: QpQos, localPsn: number, features: { atomics: boolean; immediate: boolean; provider: string }, onClosed: ((qp: QueuePair) => void) | null = null) {
    this.#features = features
    this.#allOpcodes = features.atomics && features.immediate
    this.#onClosed = onClosed
    this.provider = provider
    this.qpn = provider.qpn
    this.sendCq = sendCq
    this.recvCq = recvCq
    this.caps = caps
    this.qos = qos
    this.localPsn = localPsn
    sendCq.attach(this)
    if (recvCq !== sendCq) recvCq.attach(this)
    provider.setEventHandler((ev: QpEvent) => this.onError?.(new QpStateError(`QP ${ev.qpn}: ${ev.type}: ${ev.reason}`, { event: ev.type })))
  }

  get state(): QpState {
    return this.provider.state
  }

  /** WRs posted and not yet completed (send queue, receive queue, and sends waiting for room). */
  get outstanding(): { send: number; recv: number; backlog: number } {
    return { send: this.#sends.size, recv: this.#recvs.size, backlog: this.#backlog?.length ?? 0 }
  }

  /** The endpoint record the peer needs to connect to this QP. */
  endpoint(): QpEndpointInfo {
    return { qpn: this.qpn, psn: this.localPsn }
  }

  /** Applies a state transition; throws ERR_QP_STATE / ERR_QP_ATTR naming what is wrong. */
  modify(attrs: QpModifyAttrs): void {
    if (this.#closed !== null) throw new ClosedError(`QP ${this.qpn}`)
    checkQpTransition(this.provider.state, attrs)
    this.provider.modify(attrs)
  }

  query(): QpAttrs {
    return this.provider.query()
  }

  // ---- raw verbs-style posting; completions arrive through cq.poll() / for await … of cq

  postSend(requests: PostSendRequest | readonly PostSendRequest[]): void {
    if (Array.isArray(requests)) for (const r of requests as PostSendRequest[]) this.#postSendOne(r)
    else this.#postSendOne(requests as PostSendRequest)
  }

  postRecv(requests: PostRecvRequest | readonly PostRecvRequest[]): void {
    if (Array.isArray(requests)) for (const r of requests as PostRecvRequest[]) this.#postRecvOne(r)
    else this.#postRecvOne(requests as PostRecvRequest)
  }

  #postSendOne(r: PostSendRequest): void {
    const opcode = r.opcode
    if (!this.#allOpcodes) this.#checkOpcode(opcode)
    const sgList = toSges(r.sgList)
    const signaled = r.signaled ?? true
    const inlineData = r.inlineData
    // A raw post never waits in the backlog: checked before anything is made for it.
    this.#checkSendRoom(false)
    const pending = this.#pending(opcode, r.wrId ?? 0, signaled, inlineData === undefined ? payloadBytes(sgList) : inlineData.length, null, null)
    // One WR object per QP, filled again for every raw post (the SPI's postSend does not keep it):
    // an object per post was a large part of core's cost per WR.
    const wr = (this.#postWr ??= newPostWr())
    wr.wrId = pending.id
    wr.opcode = opcode
    wr.sgList = sgList
    wr.signaled = signaled
    wr.imm = r.imm
    wr.remoteAddr = r.remoteAddr
    wr.rkey = r.rkey
    wr.compareAdd = r.compareAdd
    wr.swap = r.swap
    wr.inlineData = inlineData
    try {
      this.provider.postSend(wr)
    } finally {
      // The application's buffers are not kept alive by the QP until its next post.
      wr.sgList = NO_SGES
      wr.inlineData = undefined
    }
    this.#sends.push(pending)
  }

  #postRecvOne(r: PostRecvRequest): void {
    const sgList = toSges(r.sgList)
    this.#submitRecv(sgList, this.#pending(RecvOpcode.RECV, r.wrId ?? 0, true, payloadBytes(sgList), null, null))
  }

  // ---- promise operations: each resolves with the WR's completion or rejects with WorkCompletionError

  write(local: MemorySlice | Uint8Array, remote: RemoteRegion, options: { imm?: number } = {}): Promise<WorkCompletion> {
    try {
      const opcode = options.imm === undefined ? Opcode.RDMA_WRITE : Opcode.RDMA_WRITE_WITH_IMM
      return this.#postPayload(opcode, local, options.imm, remote)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  read(local: MemorySlice, remote: RemoteRegion): Promise<WorkCompletion> {
    try {
      this.#checkRemoteLength(local.length, remote)
      return this.#postOp(Opcode.RDMA_READ, [local.toSge()], local.length, remote, undefined, undefined, undefined, undefined)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  send(data: MemorySlice | Uint8Array, options: { imm?: number } = {}): Promise<WorkCompletion> {
    try {
      const opcode = options.imm === undefined ? Opcode.SEND : Opcode.SEND_WITH_IMM
      return this.#postPayload(opcode, data, options.imm, null)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Compares the 8 bytes at `remote` with `compare` and, if equal, stores `swap`; the original lands in `local` (8 bytes). */
  compareAndSwap(local: MemorySlice, remote: RemoteRegion, compare: bigint, swap: bigint): Promise<WorkCompletion> {
    try {
      this.#checkAtomic(local, remote)
      return this.#postOp(Opcode.ATOMIC_CMP_AND_SWP, [local.toSge()], 8, remote, undefined, compare, swap, undefined)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Adds `add` to the 8 bytes at `remote`; the original lands in `local` (8 bytes). */
  fetchAndAdd(local: MemorySlice, remote: RemoteRegion, add: bigint): Promise<WorkCompletion> {
    try {
      this.#checkAtomic(local, remote)
      return this.#postOp(Opcode.ATOMIC_FETCH_AND_ADD, [local.toSge()], 8, remote, undefined, add, undefined, undefined)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Posts a receive into `local`; resolves when a SEND (or WRITE_WITH_IMM) lands. */
  recv(local: MemorySlice): Promise<WorkCompletion> {
    return new Promise((resolve, reject) => {
      const sge = local.toSge()
      this.#submitRecv([sge], this.#pending(RecvOpcode.RECV, 0, true, sge.length, resolve, reject))
    })
  }

  /** Moves the QP to ERR, waits until every outstanding WR has completed (flushed), then destroys it. */
  close(): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  get closed(): boolean {
    return this.#closed !== null
  }

  // ---- completion path (called by CompletionQueue)

  /** @internal */
  takeCompletion(wc: WorkCompletion, surface: (wc: WorkCompletion) => void): WorkCompletion | undefined {
    const isRecv = wc.opcode === RecvOpcode.RECV || wc.opcode === RecvOpcode.RECV_RDMA_WITH_IMM
    const tracker = isRecv ? this.#recvs : this.#sends
    let visible: WorkCompletion | undefined
    const head = tracker.takeHead(wc.wrId)
    if (head !== undefined) visible = this.#settle(head, wc, isRecv)
    else visible = this.#takeBehind(tracker.take(wc.wrId), wc, isRecv ? 'recv' : 'send', surface)
    if (!isRecv && this.#backlog !== null) this.#pumpBacklog()
    if (this.#drained !== null && this.#quiet()) this.#drained()
    return visible
  }

  /** A completion for a WR that is not the oldest pending one: see WorkTracker. */
  #takeBehind(taken: Taken, wc: WorkCompletion, queue: 'send' | 'recv', surface: (wc: WorkCompletion) => void): WorkCompletion | undefined {
    if (taken.kind === 'in-order') {
      for (const silent of taken.silent) this.#settle(silent, { wrId: silent.id, status: WcStatus.SUCCESS, opcode: silent.opcode, byteLen: silent.bytes, qpn: wc.qpn }, false)
      return this.#settle(taken.wr, wc, queue === 'recv')
    }
    // After a violation the provider's late completions of the WRs failed here are expected.
    if (taken.kind === 'stray' && this.#contractBroken) return undefined
    const wrs = taken.kind === 'stray' ? [] : [...taken.earlier, taken.wr]
    const completed = taken.kind === 'stray' ? { opcode: wc.opcode, signaled: true, wrId: null, post: wc.wrId } : contractWr(taken.wr)
    const err = new ProviderContractError(this.#features.provider, this.qpn, taken.kind, queue, { ...completed, status: wc.status }, taken.kind === 'stray' ? [] : taken.skipped.map(contractWr))
    this.#breakContract(err, wrs, surface)
    return undefined
  }

  /**
   * The provider broke the SPI: the WRs involved fail with `err` (a raw post gets a GENERAL_ERR
   * completion), the owner hears of it once, and the QP is moved to ERR so the provider flushes
   * the rest.
   */
  #breakContract(err: ProviderContractError, wrs: readonly PendingWr[], surface: (wc: WorkCompletion) => void): void {
    this.#contractBroken = true
    this.stats.errors += wrs.length
    for (const p of wrs) {
      if (p.reject !== null) p.reject(err)
      else surface({ wrId: p.userWrId, status: WcStatus.GENERAL_ERR, opcode: p.opcode, byteLen: 0, qpn: this.qpn, vendorErr: 0 })
    }
    this.onError?.(err)
    const state = this.provider.state
    if (state !== QpState.RESET && state !== QpState.ERR) {
      try {
        this.provider.modify({ state: QpState.ERR })
      } catch {
        // A provider that cannot even do this leaves the QP to close(), which fails whatever is left.
      }
    }
  }

  /** `isRecv`: `wc` completes a receive WR. */
  #settle(p: PendingWr, wc: WorkCompletion, isRecv: boolean): WorkCompletion | undefined {
    const userWc = withWrId(wc, p.userWrId)
    const ok = wc.status === WcStatus.SUCCESS
    if (ok) {
      const stats = this.stats
      stats.opsCompleted++
      if (isRecv) stats.bytesReceived += wc.byteLen
      else if (p.opcode === Opcode.RDMA_READ) stats.bytesReceived += p.bytes
      else stats.bytesSent += p.bytes
      if (p.resolve !== null) stats.latency.record((now() - p.postedAt) * 1000)
    } else {
      this.stats.errors++
      if (wc.status !== WcStatus.WR_FLUSH_ERR) this.onError?.(new WorkCompletionError(wc.status, wc.opcode, this.qpn), userWc)
    }
    const resolve = p.resolve
    const reject = p.reject
    const visible = resolve === null && (p.signaled || !ok) ? userWc : undefined
    this.#release(p)
    if (resolve === null) return visible
    if (ok) resolve(userWc)
    else {
      const err = new WorkCompletionError(wc.status, wc.opcode, this.qpn)
      ;(err as { completion?: WorkCompletion }).completion = userWc
      reject!(err)
    }
    return undefined
  }

  /** A settled WR's object, for a later WR (nothing refers to it once it is out of its tracker and settled). */
  #release(p: PendingWr): void {
    p.resolve = null
    p.reject = null
    if (this.#freePending.length < FREE_PENDING_MAX) this.#freePending.push(p)
  }

  // ---- internals

  #pending(opcode: CompletionOpcode, userWrId: number, signaled: boolean, bytes: number, resolve: PendingWr['resolve'], reject: PendingWr['reject']): PendingWr {
    const postedAt = resolve === null ? 0 : now()
    const p = this.#freePending.pop()
    if (p === undefined) return { id: this.#nextId++, userWrId, opcode, signaled, bytes, postedAt, resolve, reject }
    p.id = this.#nextId++
    p.userWrId = userWrId
    p.opcode = opcode
    p.signaled = signaled
    p.bytes = bytes
    p.postedAt = postedAt
    p.resolve = resolve
    p.reject = reject
    return p
  }

  #postPayload(opcode: Opcode, data: MemorySlice | Uint8Array, imm: number | undefined, remote: RemoteRegion | null): Promise<WorkCompletion> {
    if (remote !== null) this.#checkRemoteLength(data.length, remote)
    if (data instanceof MemorySlice) return this.#postOp(opcode, [data.toSge()], data.length, remote, imm, undefined, undefined, undefined)
    if (data.length > this.caps.maxInlineData) {
      throw new InvalidArgumentError(`${data.length} bytes of unregistered data exceed the QP's inline limit (${this.caps.maxInlineData}); register the buffer and pass a slice`, { length: data.length, maxInlineData: this.caps.maxInlineData })
    }
    return this.#postOp(opcode, [], data.length, remote, imm, undefined, undefined, Uint8Array.from(data))
  }

  /** Refuses opcodes the provider declares it cannot do (capabilities.atomics / .immediate). */
  #checkOpcode(opcode: Opcode): void {
    if ((opcode === Opcode.ATOMIC_CMP_AND_SWP || opcode === Opcode.ATOMIC_FETCH_AND_ADD) && !this.#features.atomics) throw new UnsupportedError('atomic operations', this.#features.provider)
    if ((opcode === Opcode.SEND_WITH_IMM || opcode === Opcode.RDMA_WRITE_WITH_IMM) && !this.#features.immediate) throw new UnsupportedError('immediate data', this.#features.provider)
  }

  #postOp(opcode: Opcode, sgList: Sge[], bytes: number, remote: RemoteRegion | null, imm: number | undefined, compareAdd: bigint | undefined, swap: bigint | undefined, inlineData: Uint8Array | undefined): Promise<WorkCompletion> {
    return new Promise((resolve, reject) => {
      this.#checkOpcode(opcode)
      const pending = this.#pending(opcode, 0, true, bytes, resolve, reject)
      const wr: SendWorkRequest = {
        wrId: pending.id, opcode, sgList, signaled: true, imm, remoteAddr: remote?.addr, rkey: remote?.rkey, compareAdd, swap, inlineData,
      }
      this.#submitSend(wr, pending)
    })
  }

  /**
   * Throws unless a send WR may be posted now: the QP is open and in a state that takes send WRs,
   * and (unless the WR `mayWait` in the backlog) the send queue has room. True when it has room.
   */
  #checkSendRoom(mayWait: boolean): boolean {
    if (this.#closed !== null) throw new ClosedError(`QP ${this.qpn}`)
    const state = this.provider.state
    if (!canPostSend(state)) throw new QpStateError(`cannot post send WRs on QP ${this.qpn} in state ${state}; move it to RTS first`, { state })
    const room = (this.#backlog === null || this.#backlog.length === 0) && this.#sends.size < this.caps.maxSendWr
    if (!room && !mayWait) throw new QueueFullError('send', this.caps.maxSendWr)
    return room
  }

  #submitSend(wr: SendWorkRequest, pending: PendingWr): void {
    if (!this.#checkSendRoom(true)) {
      ;(this.#backlog ??= []).push({ wr, pending })
      return
    }
    this.provider.postSend(wr)
    this.#sends.push(pending)
  }

  #pumpBacklog(): void {
    const backlog = this.#backlog
    if (backlog === null) return
    while (backlog.length > 0 && this.#sends.size < this.caps.maxSendWr) {
      const { wr, pending } = backlog.shift()!
      try {
        this.provider.postSend(wr)
        this.#sends.push(pending)
      } catch (err) {
        pending.reject?.(err as Error)
      }
    }
    if (backlog.length === 0) this.#backlog = null
  }

  #submitRecv(sgList: readonly Sge[], pending: PendingWr): void {
    if (this.#closed !== null) throw new ClosedError(`QP ${this.qpn}`)
    const state = this.provider.state
    if (!canPostRecv(state)) throw new QpStateError(`cannot post receive WRs on QP ${this.qpn} in state ${state}; move it to INIT first`, { state })
    if (this.#recvs.size >= this.caps.maxRecvWr) throw new QueueFullError('recv', this.caps.maxRecvWr)
    const wr: RecvWorkRequest = { wrId: pending.id, sgList }
    this.provider.postRecv(wr)
    this.#recvs.push(pending)
  }

  #checkRemoteLength(length: number, remote: RemoteRegion): void {
    if (length > remote.length) {
      throw new InvalidArgumentError(`${length} bytes do not fit the remote region of ${remote.length} bytes`, { length, remoteLength: remote.length })
    }
  }

  #checkAtomic(local: MemorySlice, remote: RemoteRegion): void {
    if (local.length !== 8) throw new InvalidArgumentError(`atomics need an 8-byte local slice, got ${local.length}`)
    if (remote.length < 8) throw new InvalidArgumentError(`atomics need an 8-byte remote region, got ${remote.length}`)
  }

  /** Nothing left that will still complete: a trailing unsignaled send that succeeded never produces a completion. */
  #quiet(): boolean {
    return this.#recvs.size === 0 && !this.#sends.some((p) => p.signaled)
  }

  async #close(): Promise<void> {
    const backlog = this.#backlog ?? []
    this.#backlog = null
    for (const { pending } of backlog) pending.reject?.(new WorkCompletionError(WcStatus.WR_FLUSH_ERR, pending.opcode, this.qpn))
    const state = this.provider.state
    if (state !== QpState.RESET && state !== QpState.ERR) this.provider.modify({ state: QpState.ERR })
    if (!this.#quiet() && state !== QpState.RESET) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, SETTLE_TIMEOUT_MS)
        timer.unref?.()
        this.#drained = () => {
          clearTimeout(timer)
          resolve()
        }
        this.sendCq.drain()
        this.recvCq.drain()
      })
      this.#drained = null
    }
    // Anything the provider did not flush in time (or a QP still in RESET) is failed here, so no promise hangs.
    for (const p of [...this.#sends.takeAll(), ...this.#recvs.takeAll()]) {
      if (p.signaled) this.stats.errors++
      p.reject?.(new WorkCompletionError(WcStatus.WR_FLUSH_ERR, p.opcode, this.qpn))
    }
    this.provider.destroy()
    this.sendCq.detach(this)
    this.recvCq.detach(this)
    this.#onClosed?.(this)
  }
}
