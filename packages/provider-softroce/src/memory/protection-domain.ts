/** A protection domain: the scope in which memory regions, CQs and QPs are created and rkeys are honoured. */
import { type ProviderCq, type ProviderMr, type ProviderPd, type ProviderQp, type ProviderQpInit } from '@rdma-session/provider-interface'
import { busyPdError, type MemoryTable, type PdHandle } from './memory-table.js'

/** What a PD needs from its device. */
export interface PdOwner {
  readonly memory: MemoryTable
  createCq(depth: number): ProviderCq
  createQp(pd: SoftRocePd, init: ProviderQpInit): ProviderQp
  qpsOf(pd: SoftRocePd): number
  forgetPd(pd: SoftRocePd): void
}

let nextPdId = 1

export class SoftRocePd implements ProviderPd, PdHandle {
  readonly id = nextPdId++
  readonly #owner: PdOwner
  #deallocated = false

  constructor(owner: PdOwner) {
    this.#owner = owner
  }

  registerMemory(buffer: Uint8Array, access: number): ProviderMr {
    return this.#owner.memory.register(this, buffer, access)
  }

  createCq(depth: number): ProviderCq {
    return this.#owner.createCq(depth)
  }

  createQp(init: ProviderQpInit): ProviderQp {
    return this.#owner.createQp(this, init)
  }

  dealloc(): void {
    if (this.#deallocated) return
    const qps = this.#owner.qpsOf(this)
    if (qps > 0) throw busyPdError('QPs', qps)
    const mrs = this.#owner.memory.countFor(this)
    if (mrs > 0) throw busyPdError('memory regions', mrs)
    this.#deallocated = true
    this.#owner.forgetPd(this)
  }
}
