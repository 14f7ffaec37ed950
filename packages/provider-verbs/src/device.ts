/** VerbsDevice: an open RDMA device (ibv_context), its selected port and RoCEv2 GID, and its async events. */
import { EventEmitter } from 'node:events'
import type { DeviceInfo, ProviderDevice } from '@rdma-session/provider-interface'
import type { NativeBinding, NativeDevice, NativeDeviceAttrs, NativeGidEntry, NativePortAttrs, WorkBuffers } from './native.js'
import { gidToAddress, gidToText } from './gid.js'
import { VerbsPd } from './resources.js'
import type { VerbsCq } from './resources.js'
import type { VerbsQp } from './queue-pair.js'

/** Event mode: how many turns of the event loop a CQ is polled after a post before only events count. */
const RECHECK_TURNS = 2

/** The RoCEv2 UDP port; fixed by the protocol. */
export const ROCE_V2_PORT = 4791

export interface AsyncEvent {
  /** libibverbs' name of the event, e.g. 'port active', 'local work queue catastrophic error'. */
  readonly name: string
  /** The port, for port events (0 otherwise). */
  readonly port: number
  /** The QPN, for QP events (0 otherwise). */
  readonly qpn: number
}

export interface DeviceSelection {
  readonly name: string
  readonly port: number
  readonly gid: NativeGidEntry
  readonly gidTable: readonly NativeGidEntry[]
  readonly attrs: NativeDeviceAttrs
  readonly portAttrs: NativePortAttrs
}

/**
 * Events: 'async-event' (AsyncEvent) for every async event, 'port-state' ({ port, active }) when a
 * port goes up or down. QP events (fatal, path migrated, last WQE) go to the QP's event handler.
 */
export class VerbsDevice extends EventEmitter implements ProviderDevice {
  readonly info: DeviceInfo
  readonly native: NativeDevice
  readonly binding: NativeBinding
  readonly buffers: WorkBuffers
  readonly selection: DeviceSelection
  readonly pollMode: boolean
  /** Live QPs by native id (async events) and by QPN (completions). */
  readonly qpsById = new Map<number, VerbsQp>()
  readonly qpsByQpn = new Map<number, VerbsQp>()
  /** Poll mode: signaled send WRs not yet completed; the spin loop runs while this is above zero (receives wait for events). */
  outstanding = 0
  readonly #pollCqs = new Set<VerbsCq>()
  /** Event mode: CQs of QPs that posted since the last turn of the event loop; polled once then. */
  readonly #recheck = new Map<VerbsCq, number>()
  #recheckScheduled = false
  #spinning = false
  #closed = false

  constructor(binding: NativeBinding, buffers: WorkBuffers, native: NativeDevice, selection: DeviceSelection, pollMode: boolean) {
    super()
    this.binding = binding
    this.buffers = buffers
    this.native = native
    this.selection = selection
    this.pollMode = pollMode
    this.info = Object.freeze({ name: selection.name, address: gidToAddress(selection.gid.gid), port: ROCE_V2_PORT, gid: gidToText(selection.gid.gid) })
    native.watch((name, qpKind, qpId, port) => this.#onAsyncEvent(name, qpKind, qpId, port))
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Counts of live native objects (PDs, MRs, CQs, QPs, SRQs) on this device. */
  stats(): { qps: number; cqs: number; mrs: number; pds: number; srqs: number } {
    return this.native.stats()
  }

  allocPd(): VerbsPd {
    return new VerbsPd(this, new this.binding.Pd(this.native))
  }

  /** Releases the device; refuses (ERR_VERBS, EBUSY) while PDs, MRs, CQs or QPs are alive. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.native.close()
    this.#closed = true
    this.#pollCqs.clear()
  }

  /** @internal poll mode: CQs the spin loop polls. */
  addPollCq(cq: VerbsCq): void {
    this.#pollCqs.add(cq)
  }
  /** @internal */
  removePollCq(cq: VerbsCq): void {
    this.#pollCqs.delete(cq)
  }

  /**
   * @internal event mode: called after a post. Polls the CQ on the next turns of the event loop,
   * before (and besides) waiting for the completion channel: rxe processes a request inside the
   * post's system call, so its completion is often there already, while the channel's event comes
   * through deferred kernel work that can wait for a timer tick.
   */
  recheck(cq: VerbsCq): void {
    this.#recheck.set(cq, RECHECK_TURNS)
    if (this.#recheckScheduled) return
    this.#recheckScheduled = true
    setImmediate(this.#runRecheck)
  }

  readonly #runRecheck = (): void => {
    this.#recheckScheduled = false
    if (this.#closed) return
    // Keep polling a CQ for a few turns of the loop until it yields something; after that the
    // completion channel's event (which always comes) takes over.
    for (const [cq, turns] of [...this.#recheck.entries()]) {
      if (cq.pollPending() || turns <= 1) this.#recheck.delete(cq)
      else this.#recheck.set(cq, turns - 1)
    }
    if (this.#recheck.size > 0) {
      this.#recheckScheduled = true
      setImmediate(this.#runRecheck)
    }
  }

  /** @internal poll mode: called after each post; starts the spin loop if it is not running. */
  kick(): void {
    if (this.#spinning || !this.pollMode) return
    this.#spinning = true
    setImmediate(this.#spin)
  }

  readonly #spin = (): void => {
    if (this.#closed || this.outstanding <= 0) {
      this.#spinning = false
      this.outstanding = 0
      return
    }
    for (const cq of this.#pollCqs) cq.pollPending()
    // A ref'd immediate keeps libuv's poll phase non-blocking while we spin (unref'd ones do not).
    setImmediate(this.#spin)
  }

  #onAsyncEvent(name: string, qpKind: 'fatal' | 'path-migrated' | 'last-wqe-reached' | null, qpId: number, port: number): void {
    const qp = qpId !== 0 ? this.qpsById.get(qpId) : undefined
    if (qp !== undefined && qpKind !== null) qp.onAsyncEvent(qpKind, name)
    if (port !== 0 && (name === 'port active' || name === 'port error')) this.emit('port-state', { port, active: name === 'port active' })
    this.emit('async-event', { name, port, qpn: qp?.qpn ?? 0 } satisfies AsyncEvent)
  }
}
