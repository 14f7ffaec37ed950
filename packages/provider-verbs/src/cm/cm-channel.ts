/**
 * The addon's CmChannel (native/cm.cc) as TypeScript sees it, and the event router over it: every
 * rdma_cm event goes to the handler of its rdma_cm_id handle, or waits in a queue until one is set
 * (a connection request's id has no handler until the listener decides on it).
 */
import type { RdmaError } from '@rdma-session/core'
import { cmEventError } from './cm-errors.js'

/** What rdma_cm's event carries besides its name and status (struct rdma_conn_param). */
export interface NativeCmParam {
  readonly responderResources: number
  readonly initiatorDepth: number
  readonly qpNum: number
  readonly retryCount: number
  readonly rnrRetryCount: number
}

export interface NativeQpInitAttr {
  readonly mask: number
  readonly accessFlags: number
  readonly pkeyIndex: number
  readonly portNum: number
  readonly pathMtu: number
  readonly destQpn: number
  readonly rqPsn: number
  readonly sqPsn: number
  readonly maxDestRdAtomic: number
  readonly maxRdAtomic: number
  readonly minRnrTimer: number
  readonly timeout: number
  readonly retryCnt: number
  readonly rnrRetry: number
  readonly sgidIndex: number
  readonly hopLimit: number
  readonly trafficClass: number
  readonly dgid: Uint8Array
}

export interface NativeConnParam {
  readonly qpNum: number
  readonly privateData?: Uint8Array
  readonly responderResources?: number
  readonly initiatorDepth?: number
  readonly retryCount?: number
  readonly rnrRetryCount?: number
}

export interface CmAddress { readonly address: string; readonly port: number }

export interface NativeCmChannel {
  createId(): number
  destroyId(handle: number): void
  bind(handle: number, address: string, port: number): CmAddress
  listen(handle: number, backlog: number): void
  resolveAddr(handle: number, source: string | null, destination: string, port: number, timeoutMs: number): void
  resolveRoute(handle: number, timeoutMs: number): void
  initQpAttr(handle: number, state: number): NativeQpInitAttr
  connect(handle: number, param: NativeConnParam): void
  accept(handle: number, param: NativeConnParam): void
  reject(handle: number, privateData?: Uint8Array): void
  establish(handle: number): void
  /** 0, or the errno of rdma_disconnect (EINVAL: not connected). */
  disconnect(handle: number): number
  info(handle: number): { readonly device?: string; readonly portNum: number; readonly local: CmAddress; readonly remote: CmAddress }
  close(): void
}

export type CmEventHandler = (name: string, status: number, handle: number, listenHandle: number, privateData: Uint8Array | null, param: NativeCmParam) => void

export interface CmBinding {
  CmChannel?: new (onEvent: CmEventHandler) => NativeCmChannel
  librdmacm?(): { readonly loaded: boolean; readonly file: string; readonly error?: string }
}

export interface CmEvent {
  readonly name: string
  readonly status: number
  readonly handle: number
  readonly listenHandle: number
  readonly privateData: Uint8Array | null
  readonly param: NativeCmParam
}

/** Events that end an attempt to connect (active side) or to accept (passive side). */
const FAILURES = new Set(['RDMA_CM_EVENT_REJECTED', 'RDMA_CM_EVENT_UNREACHABLE', 'RDMA_CM_EVENT_CONNECT_ERROR', 'RDMA_CM_EVENT_ADDR_ERROR', 'RDMA_CM_EVENT_ROUTE_ERROR', 'RDMA_CM_EVENT_DEVICE_REMOVAL', 'RDMA_CM_EVENT_DISCONNECTED'])

export class CmRouter {
  readonly channel: NativeCmChannel
  readonly #handlers = new Map<number, (e: CmEvent) => void>()
  readonly #queued = new Map<number, CmEvent[]>()
  #onRequest: (e: CmEvent) => void = () => {}

  constructor(make: (onEvent: CmEventHandler) => NativeCmChannel) {
    this.channel = make((name, status, handle, listenHandle, privateData, param) => this.#dispatch({ name, status, handle, listenHandle, privateData, param }))
  }

  /** Where connection requests go (their new id is registered, without a handler yet). */
  set onRequest(f: (e: CmEvent) => void) {
    this.#onRequest = f
  }

  #dispatch(e: CmEvent): void {
    if (e.name === 'RDMA_CM_EVENT_CONNECT_REQUEST') {
      this.#queued.set(e.handle, [])
      return this.#onRequest(e)
    }
    const h = this.#handlers.get(e.handle)
    if (h !== undefined) return h(e)
    this.#queued.get(e.handle)?.push(e)
  }

  /** Sends this id's events (queued ones first) to `handler` from now on. */
  handle(handle: number, handler: (e: CmEvent) => void): void {
    this.#handlers.set(handle, handler)
    const q = this.#queued.get(handle)
    this.#queued.delete(handle)
    for (const e of q ?? []) handler(e)
  }

  /** The next event of `handle`: resolves on `want`, rejects (in words) on a failure event. */
  next(handle: number, want: string, target: string): Promise<CmEvent> {
    return new Promise((resolve, reject) => {
      this.handle(handle, (e) => {
        if (e.name === want) return resolve(e)
        if (FAILURES.has(e.name)) return reject(cmEventError(e.name, e.status, target, e.privateData) as RdmaError)
        // Anything else (TIMEWAIT_EXIT of an earlier use, ADDR_CHANGE) is not an answer: keep waiting.
      })
    })
  }

  /** Destroys the id (idempotent) and forgets its handler. */
  destroy(handle: number): void {
    this.#handlers.delete(handle)
    this.#queued.delete(handle)
    this.channel.destroyId(handle)
  }

  close(): void {
    this.#handlers.clear()
    this.#queued.clear()
    this.channel.close()
  }
}
