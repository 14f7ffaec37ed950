/** A protection domain: creates memory regions, CQs and QPs, and refuses to go away before them. */
import { AccessFlag, ClosedError, InvalidArgumentError, QpStateError, UnsupportedError, type ProviderPd, type ProviderQpInit, type QpQos } from '@rdma-session/provider-interface'
import { MockCq, type CqOwner } from './mock-cq.js'
import type { MockDevice } from './mock-device.js'
import { MockQp } from './mock-qp.js'
import type { MemoryOwner, MockMr } from './memory-region.js'
import { MOCK_CAPABILITIES } from './capabilities.js'

/** Most completions one CQ may hold. */
export const MAX_CQ_DEPTH = 4_194_304

function intIn(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}, got ${String(v)}`, { attribute: name })
  }
}

function checkQos(qos: QpQos | undefined): void {
  if (qos === null || typeof qos !== 'object') throw new InvalidArgumentError('createQp needs qos { serviceLevel, trafficClass, className, weight, rateLimitBps }')
  intIn('qos.weight', qos.weight, 1, 1000)
  if (!(typeof qos.rateLimitBps === 'number' && qos.rateLimitBps >= 0 && Number.isFinite(qos.rateLimitBps))) {
    throw new InvalidArgumentError(`qos.rateLimitBps must be a non-negative number (0 = unlimited), got ${String(qos.rateLimitBps)}`)
  }
}

export class MockPd implements ProviderPd, MemoryOwner, CqOwner {
  readonly #mrs = new Set<MockMr>()
  readonly #cqs = new Set<MockCq>()
  readonly #qps = new Set<MockQp>()
  #deallocated = false

  constructor(readonly device: MockDevice) {}

  registerMemory(buffer: Uint8Array, access: number): MockMr {
    this.#checkAlive()
    if (!(buffer instanceof Uint8Array)) throw new InvalidArgumentError('registerMemory takes a Uint8Array (a Buffer is one)')
    intIn('access', access, 0, 15)
    if ((access & (AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_ATOMIC)) !== 0 && (access & AccessFlag.LOCAL_WRITE) === 0) {
      throw new InvalidArgumentError("remote-write and remote-atomic access need local-write too (as in verbs); add 'local-write'", { access })
    }
    if (buffer.length > MOCK_CAPABILITIES.maxMrSize) {
      throw new InvalidArgumentError(`${buffer.length} bytes exceed the largest region (${MOCK_CAPABILITIES.maxMrSize} bytes)`, { length: buffer.length })
    }
    const mr = this.device.memory.register(this, buffer, access)
    this.#mrs.add(mr)
    return mr
  }

  createCq(depth: number): MockCq {
    this.#checkAlive()
    intIn('CQ depth', depth, 1, MAX_CQ_DEPTH)
    const cq = new MockCq(this, depth)
    this.#cqs.add(cq)
    return cq
  }

  createQp(init: ProviderQpInit): MockQp {
    this.#checkAlive()
    const caps = MOCK_CAPABILITIES
    for (const cq of [init.sendCq, init.recvCq]) {
      if (!(cq instanceof MockCq) || cq.destroyed || !(cq.owner instanceof MockPd) || cq.owner.device !== this.device) {
        throw new InvalidArgumentError('createQp needs live CQs created on the same mock device')
      }
    }
    intIn('maxSendWr', init.maxSendWr, 1, caps.maxQpWr)
    intIn('maxRecvWr', init.maxRecvWr, 1, caps.maxQpWr)
    intIn('maxSendSge', init.maxSendSge, 1, caps.maxSge)
    intIn('maxRecvSge', init.maxRecvSge, 1, caps.maxSge)
    intIn('maxInlineData', init.maxInlineData, 0, caps.maxInline)
    checkQos(init.qos)
    if (this.device.qpCount >= caps.maxQps) throw new UnsupportedError(`more than ${caps.maxQps} QPs on one device`, 'mock')
    const qp = new MockQp(this, this.device, this.device.allocateQpn(), init.sendCq as MockCq, init.recvCq as MockCq, init)
    this.device.addQp(qp)
    this.#qps.add(qp)
    return qp
  }

  dealloc(): void {
    if (this.#deallocated) return
    const live = this.#qps.size + this.#cqs.size + this.#mrs.size
    if (live > 0) {
      throw new QpStateError(`PD still has ${this.#qps.size} QP(s), ${this.#cqs.size} CQ(s) and ${this.#mrs.size} MR(s); destroy them first (QPs, then CQs and MRs)`, {
        qps: this.#qps.size,
        cqs: this.#cqs.size,
        mrs: this.#mrs.size,
      })
    }
    this.#deallocated = true
    this.device.forgetPd(this)
  }

  forgetMr(mr: MockMr): void {
    this.#mrs.delete(mr)
  }

  forgetCq(cq: MockCq): void {
    this.#cqs.delete(cq)
  }

  forgetQp(qp: MockQp): void {
    this.#qps.delete(qp)
  }

  #checkAlive(): void {
    if (this.#deallocated) throw new ClosedError('PD')
  }
}
