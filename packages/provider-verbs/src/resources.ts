/** Protection domain, registered memory, completion queue and shared receive queue over the addon. */
import { InvalidArgumentError, QueueFullError, WcStatus, type CompletionOpcode, type ProviderCq, type ProviderMr, type ProviderPd, type ProviderQpInit, type RecvWorkRequest, type WorkCompletion } from '@rdma-session/provider-interface'
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

/**
 * Word offsets in a completion record of `VerbsCq.records` (WC_RECORD.WORDS u32 per completion,
 * the i-th at `i * WC_RECORD.WORDS`). STATUS is the ibv_wc_status value (0: success), OPCODE the
 * code `completionOpcode()` names (0-6 the send opcodes in post order, 7 RECV, 8
 * RECV_RDMA_WITH_IMM; bit 4 set when IMM is valid), WR_ID_HI the top 21 bits of the 53-bit wrId.
 */
export const WC_RECORD = Object.freeze({ WR_ID_LO: 0, WR_ID_HI: 1, STATUS: 2, OPCODE: 3, BYTE_LEN: 4, QPN: 5, IMM: 6, VENDOR_ERR: 7, WORDS: 8 })

/** The SPI's status of a record's STATUS word. */
export function completionStatus(code: number): WcStatus {
  return WC_STATUS[code] ?? WcStatus.GENERAL_ERR
}

/** The SPI's opcode of a record's OPCODE word. */
export function completionOpcode(code: number): CompletionOpcode {
  return WC_OPCODE[code & 0xf]!
}

/** Decodes record `i` of `records` (VerbsCq.records) into a WorkCompletion object. */
export function decodeCompletion(records: Uint32Array, i: number): WorkCompletion {
  const o = i * WC_RECORD.WORDS
  const status = completionStatus(records[o + 2]!)
  const code = records[o + 3]!
  return {
    wrId: records[o]! + records[o + 1]! * 0x100000000,
    status,
    opcode: WC_OPCODE[code & 0xf]!,
    byteLen: records[o + 4]!,
    qpn: records[o + 5]!,
    imm: (code & WITH_IMM) !== 0 ? records[o + 6]! : undefined,
    vendorErr: status === WcStatus.SUCCESS ? undefined : records[o + 7]!,
  }
}

/** Writes `wc` as record `i` (the reverse of decodeCompletion). */
function encodeCompletion(records: Uint32Array, i: number, wc: WorkCompletion): void {
  const o = i * WC_RECORD.WORDS
  records[o] = wc.wrId % 0x100000000
  records[o + 1] = Math.floor(wc.wrId / 0x100000000)
  const st = WC_STATUS.indexOf(wc.status)
  records[o + 2] = st < 0 ? WC_STATUS.length - 1 : st
  records[o + 3] = WC_OPCODE.indexOf(wc.opcode) | (wc.imm !== undefined ? WITH_IMM : 0)
  records[o + 4] = wc.byteLen
  records[o + 5] = wc.qpn
  records[o + 6] = wc.imm ?? 0
  records[o + 7] = wc.vendorErr ?? 0
}

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

  /**
   * The fast poll: writes up to `max` (at most 256) completions as records into `records` and
   * returns how many; no objects are made. The records are shared by every CQ of the addon, so read
   * them before the next poll of any CQ (layout: WC_RECORD; decodeCompletion makes an object).
   * Completions are consumed exactly as by poll(): the two can be mixed.
   */
  pollRecords(max = 16): number {
    const b = this.#buffers
    if (max > b.maxRecords) max = b.maxRecords
    const r = b.wc
    if (this.#pending.length > 0) {
      // Completions the event loop already took: hand them over first, as records.
      const n = Math.min(max, this.#pending.length)
      for (let i = 0; i < n; i++) encodeCompletion(r, i, this.#pending[i]!)
      this.#pending = this.#pending.slice(n)
      return n
    }
    const n = this.native.poll(max)
    const pollMode = this.device.pollMode
    for (let i = 0, o = 0; i < n; i++, o += 8) {
      if (r[o + 2] !== 0) this.device.qpsByQpn.get(r[o + 5]!)?.noteCompletionError(completionStatus(r[o + 2]!))
      if (pollMode && r[o + 3]! < 7) this.device.outstanding--
    }
    return n
  }

  /** The completion records pollRecords() fills (shared by the addon's CQs; WC_RECORD layout). */
  get records(): Uint32Array {
    return this.#buffers.wc
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
        const wc = decodeCompletion(r, i)
        if (wc.status !== WcStatus.SUCCESS) this.device.qpsByQpn.get(wc.qpn)?.noteCompletionError(wc.status)
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
