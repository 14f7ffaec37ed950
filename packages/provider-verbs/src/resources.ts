/** Protection domain, registered memory, completion queue and shared receive queue over the addon. */
import { InvalidArgumentError, QueueFullError, WcStatus, type CompletionOpcode, type ProviderCq, type ProviderMr, type ProviderPd, type ProviderQpInit, type RecvWorkRequest, type WorkCompletion } from '@rdma-session/core'
import type { NativeCq, NativeMr, NativePd, NativeSrq, WorkBuffers } from './native.js'
import type { VerbsDevice } from './device.js'
import { VerbsQp, writeSges } from './queue-pair.js'
import { VerbsError } from './errors.js'

/** ibv_wc_status values, in enum order; statuses the SPI does not name map to GENERAL_ERR. */
const WC_STATUS: readonly WcStatus[] = [
  WcStatus.SUCCESS, WcStatus.LOC_LEN_ERR, WcStatus.LOC_QP_OP_ERR, WcStatus.GENERAL_ERR /* LOC_EEC_OP_ERR */,
  WcStatus.LOC_PROT_ERR, WcStatus.WR_FLUSH_ERR, WcStatus.GENERAL_ERR /* MW_BIND_ERR */, WcStatus.BAD_RESP_ERR,
  WcStatus.LOC_ACCESS_ERR, WcStatus.REM_INV_REQ_ERR, WcStatus.REM_ACCESS_ERR, WcStatus.REM_OP_ERR,
  WcStatus.RETRY_EXC_ERR, WcStatus.RNR_RETRY_EXC_ERR, WcStatus.GENERAL_ERR /* LOC_RDD_VIOL_ERR */,
  WcStatus.REM_INV_REQ_ERR /* REM_INV_RD_REQ_ERR */, WcStatus.REM_ABORT_ERR, WcStatus.GENERAL_ERR /* INV_EECN_ERR */,
  WcStatus.GENERAL_ERR /* INV_EEC_STATE_ERR */, WcStatus.FATAL_ERR, WcStatus.RETRY_EXC_ERR /* RESP_TIMEOUT_ERR */, WcStatus.GENERAL_ERR,
]

/** Opcode codes of the completion records (native/verbs.h): send opcodes by post index, then the receive ones. */
const WC_OPCODE: readonly CompletionOpcode[] = [
  'SEND', 'SEND_WITH_IMM', 'RDMA_WRITE', 'RDMA_WRITE_WITH_IMM', 'RDMA_READ', 'ATOMIC_CMP_AND_SWP', 'ATOMIC_FETCH_AND_ADD', 'RECV', 'RECV_RDMA_WITH_IMM',
]
const WITH_IMM = 0x10

export class VerbsPd implements ProviderPd {
  readonly device: VerbsDevice
  readonly native: NativePd

  constructor(device: VerbsDevice, native: NativePd) {
    this.device = device
    this.native = native
  }

  /** Registers `buffer` (its real virtual address becomes `addr`); the buffer stays referenced until deregistered. */
  registerMemory(buffer: Uint8Array, access: number): VerbsMr {
    return new VerbsMr(new this.device.binding.Mr(this.native, buffer, access), access)
  }

  createCq(depth: number): VerbsCq {
    return new VerbsCq(this.device, new this.device.binding.Cq(this.device.native, depth, true))
  }

  createQp(init: ProviderQpInit, options: { srq?: VerbsSrq } = {}): VerbsQp {
    const sendCq = init.sendCq as VerbsCq
    const recvCq = init.recvCq as VerbsCq
    if (!(sendCq instanceof VerbsCq) || !(recvCq instanceof VerbsCq)) throw new InvalidArgumentError('createQp: the CQs must come from this verbs device')
    return new VerbsQp(this, sendCq, recvCq, init, options.srq ?? null)
  }

  /** A shared receive queue for QPs created with createQp(init, { srq }). */
  createSrq(maxWr: number, maxSge = 1): VerbsSrq {
    return new VerbsSrq(this.device, new this.device.binding.Srq(this.native, maxWr, maxSge))
  }

  dealloc(): void {
    this.native.dealloc()
  }
}

export class VerbsMr implements ProviderMr {
  readonly lkey: number
  readonly rkey: number
  readonly addr: number
  readonly length: number
  readonly access: number
  readonly native: NativeMr

  constructor(native: NativeMr, access: number) {
    this.native = native
    this.lkey = native.lkey
    this.rkey = native.rkey
    this.addr = native.addr
    this.length = native.length
    this.access = access
  }

  deregister(): void {
    this.native.dereg()
  }
}

export class VerbsCq implements ProviderCq {
  readonly device: VerbsDevice
  readonly native: NativeCq
  readonly depth: number
  readonly #buffers: WorkBuffers
  /** Completions taken from the device (poll mode's spin, event mode's recheck) before core asked. */
  #pending: WorkCompletion[] = []
  #notify: (() => void) | null = null
  #destroyed = false

  constructor(device: VerbsDevice, native: NativeCq) {
    this.device = device
    this.native = native
    this.depth = native.depth
    this.#buffers = device.buffers
  }

  poll(max: number): WorkCompletion[] {
    let out: WorkCompletion[]
    if (this.#pending.length > 0) {
      out = this.#pending.length <= max ? this.#pending : this.#pending.slice(0, max)
      this.#pending = this.#pending.length <= max ? [] : this.#pending.slice(max)
      if (out.length >= max) return out
    } else {
      out = []
    }
    this.#take(max - out.length, out)
    return out
  }

  /** Moves up to `max` completions from the device into `out`. */
  #take(max: number, out: WorkCompletion[]): void {
    const b = this.#buffers
    const words = b.recordWords
    while (max > 0) {
      const want = Math.min(max, b.maxRecords)
      const n = this.native.poll(want)
      const r = b.wc
      for (let i = 0; i < n; i++) {
        const o = i * words
        const status = WC_STATUS[r[o + 2]!] ?? WcStatus.GENERAL_ERR
        const code = r[o + 3]!
        const qpn = r[o + 5]!
        const wc: WorkCompletion = {
          wrId: r[o]! + r[o + 1]! * 0x100000000,
          status,
          opcode: WC_OPCODE[code & 0xf]!,
          byteLen: r[o + 4]!,
          qpn,
          imm: (code & WITH_IMM) !== 0 ? r[o + 6]! : undefined,
          vendorErr: status === WcStatus.SUCCESS ? undefined : r[o + 7]!,
        }
        if (status !== WcStatus.SUCCESS) this.device.qpsByQpn.get(qpn)?.noteCompletionError(status)
        out.push(wc)
      }
      if (this.device.pollMode) for (let i = 0; i < n; i++) if (r[i * words + 3]! < 7) this.device.outstanding--
      max -= n
      if (n < want) break
    }
  }

  /** @internal called from the event loop (poll mode's spin, event mode's recheck after a post); true if it found completions. */
  pollPending(): boolean {
    if (this.#destroyed) return true
    const before = this.#pending.length
    this.#take(this.#buffers.maxRecords, this.#pending)
    if (this.#pending.length === before) return false
    this.#notify?.()
    return true
  }

  setNotify(cb: () => void): void {
    this.#notify = cb
    this.native.setNotify(cb)
    if (this.device.pollMode) this.device.addPollCq(this)
  }

  destroy(): void {
    this.native.destroy()
    this.#destroyed = true
    this.device.removePollCq(this)
    this.#notify = null
  }
}

/** A shared receive queue (ibv_srq): receive WRs posted here serve every QP created with it. */
export class VerbsSrq {
  readonly device: VerbsDevice
  readonly native: NativeSrq
  readonly maxWr: number

  constructor(device: VerbsDevice, native: NativeSrq) {
    this.device = device
    this.native = native
    this.maxWr = native.maxWr
  }

  postRecv(wr: RecvWorkRequest): void {
    const b = this.device.buffers
    b.f64[0] = wr.wrId
    writeSges(b, wr.sgList)
    try {
      this.native.postRecv()
    } catch (err) {
      if (err instanceof VerbsError && err.errno === 12) throw new QueueFullError('recv', this.maxWr)
      throw err
    }
  }

  destroy(): void {
    this.native.destroy()
  }
}
