/**
 * Wraps a provider so that a `Tamper` can break it on purpose: change the access a region is
 * registered with, the WRs handed to the provider, and the completions handed back to core (now,
 * changed, twice, later or never). The mutation runner uses it to prove that conformance cases
 * catch broken providers; it is provider-agnostic (it sees only the SPI).
 */
import type {
  Provider, ProviderCq, ProviderDevice, ProviderMr, ProviderPd, ProviderQp, ProviderQpInit, QpAttrs, QpEvent, QpModifyAttrs,
  QpState, RecvWorkRequest, SendWorkRequest, Sge, WorkCompletion,
} from '@rdma-session/core'

/** Where a tamper sends the completions it lets through. */
export interface CompletionSink {
  /** Hands `wc` to core (on its next poll of this CQ). */
  emit(wc: WorkCompletion): void
  /** Runs `fn` after `ms` (it may emit), then wakes core to poll. Cancelled when the CQ is destroyed. */
  later(ms: number, fn: () => void): void
  /** The QPNs whose receive queue completes on this CQ. */
  receiveQpns(): readonly number[]
}

export interface Tamper {
  /** The access bits a region is really registered with. */
  register?(access: number): number
  /** The WR the real provider gets (a copy when changed: WRs are borrowed). `bytesOf` reads local memory an SGE names. */
  postSend?(wr: SendWorkRequest, qpn: number, bytesOf: (sge: Sge) => Uint8Array): SendWorkRequest
  /** Each completion the real provider reports, in order; without this hook every one is emitted as is. */
  completion?(wc: WorkCompletion, sink: CompletionSink): void
}

class TamperedCq implements ProviderCq {
  readonly inner: ProviderCq
  readonly receivers = new Set<number>()
  readonly #tamper: Tamper
  readonly #out: WorkCompletion[] = []
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()
  #notify: (() => void) | null = null
  readonly #sink: CompletionSink = {
    emit: (wc) => void this.#out.push(wc),
    later: (ms, fn) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer)
        fn()
        this.#notify?.()
      }, ms)
      this.#timers.add(timer)
    },
    receiveQpns: () => [...this.receivers],
  }

  constructor(inner: ProviderCq, tamper: Tamper) {
    this.inner = inner
    this.#tamper = tamper
  }
  get depth(): number {
    return this.inner.depth
  }
  poll(max: number): WorkCompletion[] {
    for (;;) {
      const batch = this.inner.poll(64)
      for (const wc of batch) {
        if (this.#tamper.completion === undefined) this.#out.push(wc)
        else this.#tamper.completion(wc, this.#sink)
      }
      if (batch.length < 64) break
    }
    return this.#out.splice(0, max)
  }
  setNotify(cb: () => void): void {
    this.#notify = cb
    this.inner.setNotify(cb)
  }
  destroy(): void {
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    this.inner.destroy()
  }
}

class TamperedQp implements ProviderQp {
  readonly #inner: ProviderQp
  readonly #tamper: Tamper
  readonly #recvCq: TamperedCq
  readonly #bytesOf: (sge: Sge) => Uint8Array

  constructor(inner: ProviderQp, tamper: Tamper, recvCq: TamperedCq, bytesOf: (sge: Sge) => Uint8Array) {
    this.#inner = inner
    this.#tamper = tamper
    this.#recvCq = recvCq
    this.#bytesOf = bytesOf
    recvCq.receivers.add(inner.qpn)
  }
  get qpn(): number {
    return this.#inner.qpn
  }
  get state(): QpState {
    return this.#inner.state
  }
  modify(attrs: QpModifyAttrs): void {
    this.#inner.modify(attrs)
  }
  query(): QpAttrs {
    return this.#inner.query()
  }
  postSend(wr: SendWorkRequest): void {
    this.#inner.postSend(this.#tamper.postSend?.(wr, this.qpn, this.#bytesOf) ?? wr)
  }
  postRecv(wr: RecvWorkRequest): void {
    this.#inner.postRecv(wr)
  }
  setEventHandler(cb: (event: QpEvent) => void): void {
    this.#inner.setEventHandler(cb)
  }
  destroy(): void {
    this.#recvCq.receivers.delete(this.qpn)
    this.#inner.destroy()
  }
}

function tamperPd(inner: ProviderPd, tamper: Tamper): ProviderPd {
  const regions = new Map<number, { mr: ProviderMr; buffer: Uint8Array }>()
  const bytesOf = (sge: Sge): Uint8Array => {
    const r = regions.get(sge.lkey)
    if (r === undefined) return new Uint8Array(0)
    const at = sge.addr - r.mr.addr
    return r.buffer.subarray(at, at + sge.length)
  }
  const unwrap = (cq: ProviderCq): TamperedCq => {
    if (!(cq instanceof TamperedCq)) throw new Error('interpose: a CQ of another provider')
    return cq
  }
  return {
    registerMemory: (buffer, access) => {
      const mr = inner.registerMemory(buffer, tamper.register?.(access) ?? access)
      regions.set(mr.lkey, { mr, buffer })
      return {
        get lkey() { return mr.lkey },
        get rkey() { return mr.rkey },
        get addr() { return mr.addr },
        get length() { return mr.length },
        get access() { return mr.access },
        deregister: () => {
          regions.delete(mr.lkey)
          mr.deregister()
        },
      }
    },
    createCq: (depth) => new TamperedCq(inner.createCq(depth), tamper),
    createQp: (init: ProviderQpInit) => {
      const sendCq = unwrap(init.sendCq)
      const recvCq = unwrap(init.recvCq)
      return new TamperedQp(inner.createQp({ ...init, sendCq: sendCq.inner, recvCq: recvCq.inner }), tamper, recvCq, bytesOf)
    },
    dealloc: () => inner.dealloc(),
  }
}

/** `provider`, with `tamper` between it and core. Specification version, capabilities and package are the provider's own. */
export function interpose(provider: Provider, tamper: Tamper): Provider {
  return {
    name: provider.name,
    specificationVersion: provider.specificationVersion,
    capabilities: provider.capabilities,
    ...(provider.package === undefined ? {} : { package: provider.package }),
    openDevice: async (): Promise<ProviderDevice> => {
      const device = await provider.openDevice()
      return {
        info: device.info,
        allocPd: () => tamperPd(device.allocPd(), tamper),
        close: () => device.close(),
      }
    },
  }
}
