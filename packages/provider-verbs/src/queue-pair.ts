/**
 * VerbsQp: an RC queue pair. Maps the SPI's modify attributes to ibv_qp_attr (remote address ->
 * GRH with the right sgid_index, pathMtu -> IBV_MTU_*, defaults for what verbs requires), checks
 * them against the device's limits (errors name the attribute) and posts WRs through the shared
 * descriptor.
 */
import { constants } from 'node:os'
import {
  EncryptionUnsupportedError, InvalidArgumentError, QpAttributeError, QueueFullError, WcStatus,
  type PathMtu, type ProviderQp, type ProviderQpInit, type QpAttrs, type QpEncapsulation, type QpEvent,
  type QpModifyAttrs, type QpQos, type QpState, type RecvWorkRequest, type RemoteEndpoint, type SendWorkRequest, type Sge,
} from '@rdma-session/provider-interface'
import { QP_DEFAULTS as RC_DEFAULTS } from '@rdma-session/rc-engine'
import { VerbsError } from './errors.js'
import { addressToGid, gidForRemote } from './gid.js'
import { PREPARED_BAD_HANDLE, PREPARED_INLINE_DETACHED, PREPARED_MIXED_QPS, type NativeModifyAttrs, type NativeQp, type NativeQpCaps, type WorkBuffers } from './native.js'
import { ROCE_V2_PORT, type VerbsDevice } from './device.js'
import type { VerbsCq, VerbsPd, VerbsSrq } from './resources.js'

const STATE_NUM: Readonly<Record<QpState, number>> = { RESET: 0, INIT: 1, RTR: 2, RTS: 3, SQD: 4, SQE: 5, ERR: 6 }
const STATE_NAME: readonly QpState[] = ['RESET', 'INIT', 'RTR', 'RTS', 'SQD', 'SQE', 'ERR']
const MTU_ENUM: Readonly<Record<number, number>> = { 256: 1, 512: 2, 1024: 3, 2048: 4, 4096: 5 }
const OPCODE_INDEX: Readonly<Record<string, number>> = {
  SEND: 0, SEND_WITH_IMM: 1, RDMA_WRITE: 2, RDMA_WRITE_WITH_IMM: 3, RDMA_READ: 4, ATOMIC_CMP_AND_SWP: 5, ATOMIC_FETCH_AND_ADD: 6,
}
const ENOMEM = constants.errno.ENOMEM
const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([k, v]) => [v, k]))

/** Defaults for the attributes ibv_modify_qp requires on RC QPs but the SPI leaves optional. */
export const QP_DEFAULTS = Object.freeze({
  minRnrTimer: RC_DEFAULTS.minRnrTimer,
  timeout: RC_DEFAULTS.timeout,
  retryCnt: RC_DEFAULTS.retryCnt,
  rnrRetry: RC_DEFAULTS.rnrRetry,
  rdAtomic: RC_DEFAULTS.maxRdAtomic,
  hopLimit: 64,
})

/** Writes an SGE list into the shared descriptor. */
export function writeSges(b: WorkBuffers, sgList: readonly Sge[]): void {
  const n = sgList.length
  if (n > b.maxSge) throw new InvalidArgumentError(`${n} SGEs exceed the provider's limit of ${b.maxSge}`, { sges: n })
  b.u32[12] = n
  for (let i = 0; i < n; i++) {
    const s = sgList[i]!
    b.f64[7 + 2 * i] = s.addr
    b.u32[16 + 4 * i] = s.length
    b.u32[17 + 4 * i] = s.lkey
  }
}

/** A WR of the provider's own: the fields and SGEs copied (`inlineData` as given). */
function copyOfWr(wr: SendWorkRequest, inlineData: Uint8Array | undefined): SendWorkRequest {
  return { ...wr, sgList: wr.sgList.map((s) => ({ ...s })), inlineData }
}

function postError(verb: string, errno: number, queue: 'send' | 'recv', depth: number): Error {
  if (errno === ENOMEM) return new QueueFullError(queue, depth)
  const name = ERRNO_NAMES.get(errno) ?? `E${errno}`
  return new VerbsError(verb, errno, name, `${verb} failed: errno ${errno} (${name})`)
}

/**
 * A send WR encoded once in the addon by `VerbsQp.prepareSend(wr)` and posted any number of times
 * with `qp.postPrepared(prepared)`: one native call with one number, no WR marshalling. The WR is
 * fixed (opcode, wrId, SGEs, remote address, flags); the *bytes* are read at each post: the SGEs'
 * memory, or for an inline WR the `inlineData` array given to prepareSend (kept referenced; update
 * it in place, then post). Release it with `release()`; destroying the QP releases it too.
 */
export class PreparedSend {
  readonly qp: VerbsQp
  /** The addon's handle (a safe integer; stale handles are refused, never reused by accident). */
  readonly handle: number
  /** The WR as prepared (a copy, except `inlineData`: the caller's array, read at each post). */
  readonly wr: Readonly<SendWorkRequest>
  readonly signaled: boolean
  /** @internal */
  readonly op: number
  #released = false

  /** @internal created by VerbsQp.prepareSend */
  constructor(qp: VerbsQp, handle: number, wr: SendWorkRequest, op: number) {
    this.qp = qp
    this.handle = handle
    this.wr = wr
    this.signaled = wr.signaled
    this.op = op
  }

  get released(): boolean {
    return this.#released
  }

  /** Frees the native WR and the reference to its inline data. Idempotent. */
  release(): void {
    if (this.#released) return
    this.qp.releasePrepared(this)
  }

  /** @internal */
  markReleased(): void {
    this.#released = true
  }
}

export class VerbsQp implements ProviderQp {
  readonly qpn: number
  readonly native: NativeQp
  readonly pd: VerbsPd
  readonly device: VerbsDevice
  readonly sendCq: VerbsCq
  readonly recvCq: VerbsCq
  readonly srq: VerbsSrq | null
  readonly qos: QpQos
  /** The capacities the device gave (at least what was asked). */
  readonly caps: NativeQpCaps
  readonly #buffers: WorkBuffers
  readonly #maxSendWr: number
  readonly #maxRecvWr: number
  #state: QpState = 'RESET'
  #remote: RemoteEndpoint | undefined
  #encapsulation: QpEncapsulation | undefined
  #handler: ((event: QpEvent) => void) | null = null
  #destroyed = false
  /**
   * Send WRs posted while the QP is in SQD. rxe holds such WRs but does not restart its requester
   * on SQD -> RTS, so the provider holds them itself and posts them on the way back to RTS (or to
   * ERR, where they flush in order after everything posted before them).
   */
  #held: SendWorkRequest[] = []
  /** Live prepared WRs (released when the QP is destroyed). */
  readonly #prepared = new Set<PreparedSend>()
  /** The addon's module functions of the prepared path (plain Node-API functions, no receiver needed). */
  readonly #postPreparedFn: (handle: number) => number
  #listScratch = new Float64Array(64)

  constructor(pd: VerbsPd, sendCq: VerbsCq, recvCq: VerbsCq, init: ProviderQpInit, srq: VerbsSrq | null) {
    this.pd = pd
    this.device = pd.device
    this.sendCq = sendCq
    this.recvCq = recvCq
    this.srq = srq
    this.qos = init.qos
    this.#buffers = this.device.buffers
    this.#postPreparedFn = this.device.binding.postPrepared
    const caps: NativeQpCaps = {
      maxSendWr: init.maxSendWr, maxRecvWr: init.maxRecvWr, maxSendSge: init.maxSendSge, maxRecvSge: init.maxRecvSge, maxInlineData: init.maxInlineData,
    }
    this.native = srq === null
      ? new this.device.binding.Qp(pd.native, sendCq.native, recvCq.native, caps)
      : new this.device.binding.Qp(pd.native, sendCq.native, recvCq.native, caps, srq.native)
    this.qpn = this.native.qpn
    this.caps = this.native.caps
    this.#maxSendWr = init.maxSendWr
    this.#maxRecvWr = init.maxRecvWr
    this.device.qpsById.set(this.native.id, this)
    this.device.qpsByQpn.set(this.qpn, this)
  }

  get state(): QpState {
    return this.#state
  }

  modify(attrs: QpModifyAttrs): void {
    if (attrs.encryption !== undefined && attrs.encryption !== null) throw new EncryptionUnsupportedError('verbs', attrs.encryption.suite)
    const from = this.#state
    const to = attrs.state
    const n = this.#nativeAttrs(from, attrs)
    this.native.modify(n)
    this.#state = to
    if (this.#held.length > 0 && to !== 'SQD') this.#releaseHeld(to)
    if (to === 'RESET') {
      this.#remote = undefined
      this.#encapsulation = undefined
    } else if (attrs.remote !== undefined) {
      this.#remote = { address: attrs.remote.address, port: attrs.remote.port }
      this.#encapsulation = attrs.encapsulation ?? this.#encapsulation
    }
  }

  #nativeAttrs(from: QpState, a: QpModifyAttrs): NativeModifyAttrs {
    const sel = this.device.selection
    const n: NativeModifyAttrs = { qpState: STATE_NUM[a.state] }
    if (a.accessFlags !== undefined) n.accessFlags = a.accessFlags
    if (a.portNum !== undefined) {
      if (a.portNum < 1 || a.portNum > sel.attrs.physPortCnt) throw new QpAttributeError('portNum', `device ${sel.name} has port(s) 1 to ${sel.attrs.physPortCnt}, got ${a.portNum}`)
      n.portNum = a.portNum
    }
    if (a.pkeyIndex !== undefined) {
      if (a.pkeyIndex >= sel.portAttrs.pkeyTblLen) throw new QpAttributeError('pkeyIndex', `port ${sel.port} has ${sel.portAttrs.pkeyTblLen} P_Key(s), got index ${a.pkeyIndex}`)
      n.pkeyIndex = a.pkeyIndex
    }
    if (from === 'RESET' && a.state === 'INIT') {
      n.accessFlags ??= 0
      n.portNum ??= sel.port
      n.pkeyIndex ??= 0
    }
    if (a.minRnrTimer !== undefined) n.minRnrTimer = a.minRnrTimer
    if (from === 'INIT' && a.state === 'RTR') {
      n.ah = this.#addressVector(a)
      n.pathMtu = this.#pathMtu(a.pathMtu!)
      n.destQpn = a.destQpn!
      n.rqPsn = a.rqPsn!
      n.maxDestRdAtomic = this.#rdAtomic('maxDestRdAtomic', a.maxDestRdAtomic, sel.attrs.maxQpInitRdAtom)
      n.minRnrTimer ??= QP_DEFAULTS.minRnrTimer
    }
    if (from === 'RTR' && a.state === 'RTS') {
      n.sqPsn = a.sqPsn!
      n.timeout = a.timeout ?? QP_DEFAULTS.timeout
      n.retryCnt = a.retryCnt ?? QP_DEFAULTS.retryCnt
      n.rnrRetry = a.rnrRetry ?? QP_DEFAULTS.rnrRetry
      n.maxRdAtomic = this.#rdAtomic('maxRdAtomic', a.maxRdAtomic, sel.attrs.maxQpRdAtom)
    } else {
      if (a.timeout !== undefined) n.timeout = a.timeout
      if (a.retryCnt !== undefined) n.retryCnt = a.retryCnt
      if (a.rnrRetry !== undefined) n.rnrRetry = a.rnrRetry
      if (a.maxRdAtomic !== undefined) n.maxRdAtomic = this.#rdAtomic('maxRdAtomic', a.maxRdAtomic, sel.attrs.maxQpRdAtom)
    }
    return n
  }

  #rdAtomic(attr: string, value: number | undefined, max: number): number {
    if (value === undefined) return Math.min(QP_DEFAULTS.rdAtomic, max)
    if (value > max) throw new QpAttributeError(attr, `device ${this.device.selection.name} allows at most ${max}, got ${value}`)
    return value
  }

  #pathMtu(mtu: PathMtu): number {
    const active = this.device.selection.portAttrs.activeMtu
    if (mtu > active) throw new QpAttributeError('pathMtu', `${mtu} exceeds the active MTU ${active} of ${this.device.selection.name} port ${this.device.selection.port}`)
    return MTU_ENUM[mtu]!
  }

  /** The GRH for RoCEv2: destination GID from the remote address, the local GID of the same family. */
  #addressVector(a: QpModifyAttrs): NonNullable<NativeModifyAttrs['ah']> {
    const remote = a.remote!
    if (remote.port !== ROCE_V2_PORT) throw new QpAttributeError('remote', `RoCEv2 peers receive on UDP port ${ROCE_V2_PORT}, got port ${remote.port}`)
    let dgid: Uint8Array
    try {
      dgid = addressToGid(remote.address)
    } catch {
      throw new QpAttributeError('remote', `'${remote.address}' is not an IPv4 or IPv6 address`)
    }
    const sel = this.device.selection
    const sgid = gidForRemote(sel.gidTable, sel.port, sel.gid, dgid)
    if (sgid === null) throw new QpAttributeError('remote', `${sel.name} port ${sel.port} has no RoCEv2 GID of the address family of ${remote.address}`)
    const enc = a.encapsulation
    return {
      dgid,
      sgidIndex: sgid.index,
      hopLimit: enc?.hopLimit ?? QP_DEFAULTS.hopLimit,
      trafficClass: enc !== undefined ? (enc.dscp << 2) | enc.ecn : this.qos.trafficClass,
      // rxe and RoCE NICs derive the UDP source port from the flow label (0xC000 | label bits).
      flowLabel: enc !== undefined && enc.udpSourcePort !== 0 ? enc.udpSourcePort & 0x3fff : 0,
      sl: this.qos.serviceLevel,
      portNum: sel.port,
    }
  }

  query(): QpAttrs {
    const q = this.native.query()
    const state = STATE_NAME[q.qpState] ?? this.#state
    this.#state = state
    const connected = this.#remote !== undefined
    const mtu = (128 << q.pathMtu) as PathMtu
    return {
      qpn: this.qpn,
      state,
      encrypted: false,
      accessFlags: q.accessFlags,
      portNum: q.portNum,
      pkeyIndex: q.pkeyIndex,
      ...(connected
        ? {
            remote: this.#remote,
            pathMtu: mtu,
            destQpn: q.destQpn,
            rqPsn: q.rqPsn,
            maxDestRdAtomic: q.maxDestRdAtomic,
            minRnrTimer: q.minRnrTimer,
            encapsulation: this.#encapsulation ?? { udpSourcePort: 0, dscp: q.ah.trafficClass >> 2, ecn: q.ah.trafficClass & 3, hopLimit: q.ah.hopLimit },
          }
        : {}),
      ...(state === 'RTS' || state === 'SQD' || state === 'SQE' || (state === 'ERR' && connected)
        ? { sqPsn: q.sqPsn, timeout: q.timeout, retryCnt: q.retryCnt, rnrRetry: q.rnrRetry, maxRdAtomic: q.maxRdAtomic }
        : {}),
    }
  }

  #releaseHeld(to: QpState): void {
    const held = this.#held
    this.#held = []
    if (to === 'RESET') return // a QP moved to RESET drops its WRs without completions
    for (const wr of held) this.postSend(wr)
  }

  /** Fills the shared descriptor with `wr` (everything but inline data); returns the opcode index. */
  #encode(wr: SendWorkRequest): number {
    const b = this.#buffers
    const op = OPCODE_INDEX[wr.opcode]
    if (op === undefined) throw new InvalidArgumentError(`unknown opcode '${String(wr.opcode)}'`)
    b.f64[0] = wr.wrId
    b.u32[8] = op
    b.u32[9] = wr.signaled ? 1 : 0
    b.u32[10] = wr.imm === undefined ? 0 : wr.imm >>> 0
    b.f64[1] = wr.remoteAddr ?? 0
    b.u32[11] = wr.rkey ?? 0
    if (op >= 5) {
      b.u64[2] = BigInt.asUintN(64, wr.compareAdd ?? 0n)
      b.u64[3] = BigInt.asUintN(64, wr.swap ?? 0n)
    }
    if (wr.inlineData === undefined) {
      if (wr.sgList.length > this.caps.maxSendSge) throw new InvalidArgumentError(`${wr.sgList.length} SGEs exceed the QP's maxSendSge (${this.caps.maxSendSge})`)
      writeSges(b, wr.sgList)
    }
    return op
  }

  #postFailure(rc: number, op: number, remoteAddr: number | undefined): Error {
    if (op >= 5 && (remoteAddr ?? 0) % 8 !== 0) {
      return new InvalidArgumentError(`atomic remote address 0x${(remoteAddr ?? 0).toString(16)} is not 8-byte aligned (the device refused the WR at post time: errno ${rc})`, { remoteAddr })
    }
    return postError('ibv_post_send', rc, 'send', this.#maxSendWr)
  }

  #hold(wr: SendWorkRequest): void {
    if (this.#held.length >= this.#maxSendWr) throw new QueueFullError('send', this.#maxSendWr)
    // A copy, inline bytes included: the WR is the caller's again once postSend returns (core reuses it).
    this.#held.push(copyOfWr(wr, wr.inlineData === undefined ? undefined : Uint8Array.from(wr.inlineData)))
  }

  postSend(wr: SendWorkRequest): void {
    if (this.#state === 'SQD') return this.#hold(wr)
    const op = this.#encode(wr)
    const rc = wr.inlineData !== undefined ? this.native.postSend(wr.inlineData) : this.native.postSend()
    if (rc !== 0) throw this.#postFailure(rc, op, wr.remoteAddr)
    this.#afterPost(wr.signaled || this.#state === 'ERR', this.sendCq)
  }

  /**
   * Encodes `wr` once in the addon and returns a handle to post it with `postPrepared` (the fast
   * path for a WR posted again and again, e.g. a ping-pong or a stream of equal WRITEs). Inline
   * data (at most `caps.maxInlineData` bytes) is read from `wr.inlineData` at each post.
   */
  prepareSend(wr: SendWorkRequest): PreparedSend {
    if (this.#destroyed) throw new InvalidArgumentError(`prepareSend: QP ${this.qpn} is destroyed`)
    const data = wr.inlineData
    if (data !== undefined) {
      if (!(data instanceof Uint8Array)) throw new InvalidArgumentError('prepareSend: inlineData must be a Uint8Array')
      if (data.length > this.caps.maxInlineData) throw new InvalidArgumentError(`prepareSend: ${data.length} bytes of inline data exceed the QP's maxInlineData (${this.caps.maxInlineData})`, { bytes: data.length })
    }
    const op = this.#encode(wr)
    const handle = data !== undefined ? this.native.prepareSend(data) : this.native.prepareSend()
    const copy = copyOfWr(wr, data)
    const p = new PreparedSend(this, handle, copy, op)
    this.#prepared.add(p)
    return p
  }

  /** Posts a prepared WR (see prepareSend). Throws ERR_INVALID_ARGUMENT for a released one or one of another QP. */
  postPrepared(p: PreparedSend): void {
    if (p.qp !== this) throw new InvalidArgumentError(`postPrepared: not a prepared WR of QP ${this.qpn}`)
    const state = this.#state
    if (state === 'SQD') return this.#holdPrepared(p)
    const rc = this.#postPreparedFn(p.handle)
    if (rc !== 0) throw this.#preparedFailure(rc, p)
    // #afterPost(p.signaled || state === 'ERR') with its common case inline: under TCG every JS
    // call on this path costs about a microsecond.
    if (state === 'ERR') {
      this.#afterPost(true, this.sendCq)
    } else if (p.signaled) {
      const d = this.device
      if (d.pollMode) {
        d.outstanding++
        d.kick()
      } else {
        d.recheck(this.sendCq)
      }
    }
  }

  /**
   * Posts `list[0..count)` (prepared WRs of this QP) chained, one `ibv_post_send` per 64: one
   * native call and one doorbell for the lot. Every entry is checked before anything is posted; if
   * the device refuses one, those before it are posted. The error says how many were posted
   * (`details.posted`) and which entry failed (`details.index`).
   */
  postPreparedList(list: readonly PreparedSend[], count: number = list.length): void {
    if (count > list.length) count = list.length
    let handles = this.#listScratch
    if (handles.length < count) handles = this.#listScratch = new Float64Array(Math.max(count, handles.length * 2))
    for (let i = 0; i < count; i++) {
      const p = list[i]!
      if (p.qp !== this) throw new InvalidArgumentError(`postPreparedList: entry ${i} is not a prepared WR of QP ${this.qpn}`, { index: i })
      handles[i] = p.handle
    }
    const state = this.#state
    if (state === 'SQD') {
      for (let i = 0; i < count; i++) this.#holdPrepared(list[i]!)
      return
    }
    const r = this.device.binding.postPreparedList(handles, count)
    const posted = r === 0 ? count : r[1]
    let completions = 0
    for (let i = 0; i < posted; i++) if (list[i]!.signaled || state === 'ERR') completions++
    if (posted > 0) this.#afterPost(completions, this.sendCq)
    if (r === 0) return
    const err = this.#preparedFailure(r[0], list[r[2]]!) as Error & { details?: Record<string, unknown> }
    if (err.details !== undefined) Object.assign(err.details, { posted, index: r[2] })
    throw err
  }

  #holdPrepared(p: PreparedSend): void {
    if (p.released) throw this.#preparedFailure(PREPARED_BAD_HANDLE, p)
    this.#hold(p.wr)
  }

  #preparedFailure(rc: number, p: PreparedSend): Error {
    switch (rc) {
      case PREPARED_BAD_HANDLE:
        return new InvalidArgumentError(`prepared send WR ${p.handle} is not live: it was released, or QP ${this.qpn} was destroyed`, { handle: p.handle })
      case PREPARED_INLINE_DETACHED:
        return new InvalidArgumentError(`prepared send WR ${p.handle}: the ArrayBuffer of its inline data was detached (transferred); prepare it again`, { handle: p.handle })
      case PREPARED_MIXED_QPS:
        return new InvalidArgumentError('postPreparedList: the WRs belong to more than one QP', { handle: p.handle })
      default:
        return this.#postFailure(rc, p.op, p.wr.remoteAddr)
    }
  }

  /** Frees a prepared WR (PreparedSend.release() calls this). */
  releasePrepared(p: PreparedSend): void {
    if (p.qp !== this || p.released) return
    this.device.binding.releasePrepared(p.handle)
    p.markReleased()
    this.#prepared.delete(p)
  }

  postRecv(wr: RecvWorkRequest): void {
    if (this.srq !== null) throw new InvalidArgumentError(`QP ${this.qpn} takes its receives from a shared receive queue; post to the SRQ`)
    if (wr.sgList.length > this.caps.maxRecvSge) throw new InvalidArgumentError(`${wr.sgList.length} SGEs exceed the QP's maxRecvSge (${this.caps.maxRecvSge})`)
    const b = this.#buffers
    b.f64[0] = wr.wrId
    writeSges(b, wr.sgList)
    const rc = this.native.postRecv()
    if (rc !== 0) throw postError('ibv_post_recv', rc, 'recv', this.#maxRecvWr)
    this.#afterPost(false, this.recvCq)
  }

  /** After a post: `completions` is how many completions the posted WRs will produce (a boolean for one WR). */
  #afterPost(completions: number | boolean, cq: VerbsCq): void {
    // A WR posted to a QP in ERR must flush at once; rxe's responder only runs (and flushes
    // receive WRs) when something kicks it, and a move from ERR to ERR does.
    if (this.#state === 'ERR') this.native.modify({ qpState: STATE_NUM.ERR })
    if (completions === false || completions === 0) return
    if (!this.device.pollMode) {
      this.device.recheck(cq)
    } else {
      this.device.outstanding += completions === true ? 1 : completions
      this.device.kick()
    }
  }

  setEventHandler(cb: (event: QpEvent) => void): void {
    this.#handler = cb
  }

  /** @internal async event from the device. */
  onAsyncEvent(kind: QpEvent['type'], reason: string): void {
    if (kind === 'fatal') this.#state = 'ERR'
    this.#handler?.({ type: kind, qpn: this.qpn, reason })
  }

  /** @internal a completion of this QP failed: the QP is in ERR now (as verbs specifies). */
  noteCompletionError(status: WcStatus): void {
    if (status !== WcStatus.WR_FLUSH_ERR) this.#state = 'ERR'
  }

  destroy(): void {
    if (this.#destroyed) return
    this.#held = []
    this.native.destroy()
    this.#destroyed = true
    for (const p of this.#prepared) p.markReleased()
    this.#prepared.clear()
    this.device.qpsById.delete(this.native.id)
    if (this.device.qpsByQpn.get(this.qpn) === this) this.device.qpsByQpn.delete(this.qpn)
  }
}
