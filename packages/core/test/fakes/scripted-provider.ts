/**
 * A provider whose completions the test writes by hand: each QP records the WRs core posts, and
 * `complete` puts any completion the test likes (in or out of order, twice, …) on its CQ. For
 * core's own tests of what it does with what a provider reports; it moves no bytes.
 */
import type {
  Provider, ProviderCapabilities, ProviderCq, ProviderDevice, ProviderMr, ProviderPd, ProviderQp, ProviderQpInit,
  QpAttrs, QpModifyAttrs, QpState, RecvWorkRequest, SendWorkRequest, WcStatus, WorkCompletion,
} from '../../src/index.js'
import { SPECIFICATION_VERSION } from '../../src/index.js'

export const SCRIPTED_CAPS: ProviderCapabilities = {
  encryption: false, atomics: true, immediate: true, maxMtu: 1024, maxQps: 64, maxQpWr: 32, maxSge: 2, maxInline: 16, maxMrSize: 1 << 20, qosScheduling: false,
}

class ScriptedCq implements ProviderCq {
  readonly depth: number
  readonly ready: WorkCompletion[] = []
  #notify: (() => void) | null = null
  constructor(depth: number) {
    this.depth = depth
  }
  poll(max: number): WorkCompletion[] {
    return this.ready.splice(0, max)
  }
  setNotify(cb: () => void): void {
    this.#notify = cb
  }
  push(wc: WorkCompletion): void {
    this.ready.push(wc)
    setImmediate(() => this.#notify?.())
  }
  destroy(): void {}
}

export class ScriptedQp implements ProviderQp {
  readonly qpn: number
  state: QpState = 'RESET'
  readonly sends: SendWorkRequest[] = []
  readonly recvs: RecvWorkRequest[] = []
  readonly #init: ProviderQpInit
  constructor(qpn: number, init: ProviderQpInit) {
    this.qpn = qpn
    this.#init = init
  }
  modify(attrs: QpModifyAttrs): void {
    this.state = attrs.state
  }
  query(): QpAttrs {
    return { qpn: this.qpn, state: this.state, encrypted: false }
  }
  postSend(wr: SendWorkRequest): void {
    this.sends.push({ ...wr })
  }
  postRecv(wr: RecvWorkRequest): void {
    this.recvs.push({ ...wr })
  }
  setEventHandler(): void {}
  destroy(): void {}

  /** Completes the `index`-th send WR core posted (0: the first), with `status`. */
  completeSend(index: number, status: WcStatus = 'SUCCESS'): void {
    const wr = this.sends[index]!
    this.#cq('send').push({ wrId: wr.wrId, status, opcode: wr.opcode, byteLen: 0, qpn: this.qpn })
  }
  /** Completes the `index`-th receive WR core posted, as a RECV of `byteLen` bytes. */
  completeRecv(index: number, byteLen = 0, status: WcStatus = 'SUCCESS'): void {
    this.#cq('recv').push({ wrId: this.recvs[index]!.wrId, status, opcode: 'RECV', byteLen, qpn: this.qpn })
  }
  #cq(queue: 'send' | 'recv'): ScriptedCq {
    return (queue === 'send' ? this.#init.sendCq : this.#init.recvCq) as ScriptedCq
  }
}

/** A provider named 'scripted'; `qps` lists every QP it made, in order. */
export function scriptedProvider(capabilities: ProviderCapabilities = SCRIPTED_CAPS): Provider & { readonly qps: ScriptedQp[] } {
  const qps: ScriptedQp[] = []
  let keys = 1
  const pd: ProviderPd = {
    registerMemory: (buffer, access): ProviderMr => ({ lkey: keys, rkey: keys++, addr: 0x1000, length: buffer.length, access, deregister: () => undefined }),
    createCq: (depth) => new ScriptedCq(depth),
    createQp: (init) => {
      const qp = new ScriptedQp(0x100 + qps.length, init)
      qps.push(qp)
      return qp
    },
    dealloc: () => undefined,
  }
  const device: ProviderDevice = {
    info: { name: 'scripted0', address: '127.0.0.1', port: 4791, gid: '::ffff:127.0.0.1' },
    allocPd: () => pd,
    close: async () => undefined,
  }
  return { name: 'scripted', specificationVersion: SPECIFICATION_VERSION, capabilities, openDevice: async () => device, qps }
}
