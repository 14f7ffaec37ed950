/**
 * provider-verbs' connection manager: librdmacm (the kernel's rdma_cm and IB CM) for a context on
 * a verbs device, so rdma_cm applications (rping, perftest -R, …) connect to its QPs and its QPs
 * connect to them. The same shape as provider-softroce's: `createCm(ctx)`, `cm.listen({ port })`
 * and `cm.connect({ host, port })` give connections whose `qp` is a core QueuePair in RTS.
 *
 * The QPs are the context's own (ctx.createQp: the provider's PD and CQs), not rdma_create_qp's:
 * rdma_cm only computes their attributes (rdma_init_qp_attr: path, PSNs, MTU, rd_atomic) and the
 * manager moves them INIT -> RTR -> RTS through core's modify; connect/accept give rdma_cm the QP
 * number, and the active side completes with rdma_establish (the RTU). librdmacm is opened
 * (dlopen) when the first manager is made: without it, createCm throws ERR_LIBRDMACM_MISSING.
 */
import { isIP } from 'node:net'
import {
  CmListenerBase, InvalidArgumentError, QpState, RdmaError, checkCmBacklog, checkCmPort, checkCmPrivateData, cmTarget, createCmQp,
  type CmConnectRequest, type CmRequestDecision, type Context, type CreateQpOptions, type ErrorCode, type PathMtu, type QueuePair,
} from '@rdma-session/core'
import type { VerbsDevice } from '../device.js'
import { CmRouter, type CmAddress, type CmBinding, type CmEvent, type NativeQpInitAttr } from './cm-channel.js'
import { VerbsCmConnection } from './cm-connection.js'

const MTU_BYTES: Readonly<Record<number, PathMtu>> = { 1: 256, 2: 512, 3: 1024, 4: 2048, 5: 4096 }
const ROCE_PORT = 4791
const EMPTY = new Uint8Array(0)
/** rdma_cm's private data after its own header: REQ 56 bytes, REP 196, REJ 148. */
export const PRIVATE_DATA_MAX = Object.freeze({ connect: 56, accept: 196, reject: 148 })

export interface VerbsCmOptions {
  /** rdma_resolve_addr / rdma_resolve_route timeouts (ms, default 2000 each, as rdma_cm's examples use). */
  readonly resolveTimeoutMs?: number
}

/** How a connection's QP is made (as provider-softroce's CmQpOptions). */
export interface CmQpOptions {
  readonly qp?: CreateQpOptions
  /** QP access flags (AccessFlag bits) for the peer's RDMA READ/WRITE/atomics; default all. */
  readonly accessFlags?: number
  /** Runs on the new QP in INIT, before the REQ/REP is sent: post receives here. */
  readonly prepare?: (qp: QueuePair) => void
}

export interface CmConnectOptions extends CmQpOptions {
  /** The listener's IP address (IPv4 or IPv6, the family of the context's GID). */
  readonly host: string
  /** The listener's rdma_cm port. */
  readonly port: number
  /** Up to 56 bytes after rdma_cm's header in the REQ. */
  readonly privateData?: Uint8Array
  /** Our rdma_cm port (default: rdma_cm picks one). */
  readonly sourcePort?: number
}

/**
 * A connection request as a listener sees it. rdma_cm does not say how many bytes of private data
 * the peer sent: `privateData` is all 56 after rdma_cm's header.
 */
export type CmRequest = CmConnectRequest

/**
 * What onRequest answers: accept (optionally with REP private data, up to 196 bytes, and this
 * connection's own `qp` options and `prepare` hook in place of the listener's) or reject (REJ
 * consumer defined, up to 148 bytes).
 */
export type CmDecision = CmRequestDecision<QueuePair, CreateQpOptions>

export interface CmListenOptions extends CmQpOptions {
  readonly port: number
  /** The address to listen on (default: the context's, from its GID). */
  readonly host?: string
  /** rdma_listen's backlog (default 128). */
  readonly backlog?: number
  /** Decide on a request (default: accept). A throw rejects it. */
  readonly onRequest?: (request: CmRequest) => CmDecision | Promise<CmDecision>
}

/** A listening rdma_cm port. */
export class VerbsCmListener extends CmListenerBase<VerbsCmConnection> {
  readonly port: number
  readonly host: string
  readonly backlog: number
  /** @internal */ readonly handle: number
  /** @internal */ readonly options: CmListenOptions
  readonly #close: (l: VerbsCmListener) => void

  /** @internal */
  constructor(handle: number, bound: CmAddress, options: CmListenOptions, close: (l: VerbsCmListener) => void) {
    super()
    this.handle = handle
    this.host = bound.address
    this.port = bound.port
    this.backlog = options.backlog ?? 128
    this.options = options
    this.#close = close
  }

  /** Stops listening (the rdma_cm_id is destroyed: further REQs get REJ invalid service ID). */
  protected onClose(): void {
    this.#close(this)
  }
}

export class VerbsConnectionManager {
  readonly ctx: Context
  readonly #router: CmRouter
  readonly #device: VerbsDevice
  readonly #timeoutMs: number
  readonly #listeners = new Map<number, VerbsCmListener>()
  readonly #connections = new Set<VerbsCmConnection>()
  /** Ids being set up (connect in progress, requests being decided): destroyed by close(). */
  readonly #pending = new Set<number>()
  #closed = false

  constructor(ctx: Context, options: VerbsCmOptions = {}) {
    const device = ctx.device as unknown as Partial<VerbsDevice>
    const binding = device.binding as CmBinding | undefined
    if (ctx.provider.name !== 'verbs' || binding === undefined) throw new InvalidArgumentError(`createCm needs a context on a verbs device, got provider ${ctx.provider.name}`)
    if (typeof binding.CmChannel !== 'function') {
      throw new RdmaError('ERR_ADDON_MISSING' as unknown as ErrorCode, 'provider-verbs: this build of the addon has no rdma_cm binding (CmChannel); rebuild it: pnpm --filter @rdma-session/provider-verbs build:addon')
    }
    const Channel = binding.CmChannel
    this.ctx = ctx
    this.#device = device as VerbsDevice
    this.#timeoutMs = options.resolveTimeoutMs ?? 2000
    this.#router = new CmRouter((onEvent) => new Channel(onEvent))
    this.#router.onRequest = (e) => this.#onRequest(e)
  }

  /** Established connections not yet ended. */
  get connectionCount(): number {
    return this.#connections.size
  }

  listen(options: CmListenOptions): VerbsCmListener {
    this.#checkOpen()
    checkCmPort('listen port', options.port)
    checkCmBacklog(options.backlog)
    if (options.host !== undefined && isIP(options.host) === 0) throw new InvalidArgumentError(`listen host must be an IP address, got ${String(options.host)}`)
    const ch = this.#router.channel
    const h = ch.createId()
    try {
      const bound = ch.bind(h, options.host ?? this.ctx.info.address, options.port)
      ch.listen(h, options.backlog ?? 128)
      const l = new VerbsCmListener(h, bound, options, (x) => {
        this.#listeners.delete(x.handle)
        this.#router.destroy(x.handle)
      })
      this.#listeners.set(h, l)
      return l
    } catch (err) {
      this.#router.destroy(h)
      throw err
    }
  }

  async connect(o: CmConnectOptions): Promise<VerbsCmConnection> {
    this.#checkOpen()
    checkCmPort('connect port', o.port)
    if (o.sourcePort !== undefined) checkCmPort('sourcePort', o.sourcePort)
    const user = checkCmPrivateData('private data', o.privateData, PRIVATE_DATA_MAX.connect)
    if (typeof o.host !== 'string' || isIP(o.host) === 0) throw new InvalidArgumentError(`connect needs host: the listener's IP address, got ${String(o.host)}`)
    const target = cmTarget(o.host, o.port)
    const r = this.#router
    const h = r.channel.createId()
    this.#pending.add(h)
    let qp: QueuePair | null = null
    try {
      if (o.sourcePort !== undefined) r.channel.bind(h, this.ctx.info.address, o.sourcePort)
      r.channel.resolveAddr(h, this.ctx.info.address, o.host, o.port, this.#timeoutMs)
      await r.next(h, 'RDMA_CM_EVENT_ADDR_RESOLVED', target)
      const route = this.#sameDevice(h, target)
      r.channel.resolveRoute(h, this.#timeoutMs)
      await r.next(h, 'RDMA_CM_EVENT_ROUTE_RESOLVED', target)
      qp = this.#makeQp(h, o, route.portNum)
      const answered = r.next(h, 'RDMA_CM_EVENT_CONNECT_RESPONSE', target)
      r.channel.connect(h, { qpNum: qp.qpn, privateData: user })
      const rep = await answered
      this.#toRts(h, qp)
      r.channel.establish(h)
      this.#pending.delete(h)
      const info = r.channel.info(h)
      return this.#established('active', h, qp, rep.privateData ?? EMPTY, info.local, info.remote)
    } catch (err) {
      this.#pending.delete(h)
      r.destroy(h)
      if (qp !== null) await qp.close().catch(() => {})
      throw err
    }
  }

  /** Closes every listener, forgets every connection (their QPs go to ERR; destroying the ids sends DREQs) and the event channel. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const l of [...this.#listeners.values()]) l.close()
    for (const c of [...this.#connections]) c.close()
    for (const h of this.#pending) this.#router.destroy(h)
    this.#pending.clear()
    this.#router.close()
  }

  // ---- helpers

  #checkOpen(): void {
    if (this.#closed) throw new InvalidArgumentError('the connection manager is closed')
  }

  /** The route rdma_cm chose must leave through the context's device: the QP lives there. */
  #sameDevice(h: number, target: string): { portNum: number } {
    const info = this.#router.channel.info(h)
    if (info.device !== undefined && info.device !== this.#device.info.name) {
      throw new InvalidArgumentError(`rdma_cm reaches ${target} through device ${info.device}, but the context is on ${this.#device.info.name}`, { device: info.device })
    }
    return { portNum: info.portNum }
  }

  #makeQp(h: number, o: CmQpOptions, portNum: number): QueuePair {
    const init = this.#router.channel.initQpAttr(h, 1)
    return createCmQp(() => this.ctx.createQp(o.qp ?? {}), o, { portNum: portNum || init.portNum || 1, pkeyIndex: init.pkeyIndex })
  }

  /** RTR and RTS with what rdma_cm computed for this connection (the peer's QPN and PSN, our PSN, the path MTU, rd_atomic). */
  #toRts(h: number, qp: QueuePair): void {
    const ch = this.#router.channel
    const rtr: NativeQpInitAttr = ch.initQpAttr(h, 2)
    const remote = ch.info(h).remote
    qp.modify({
      state: QpState.RTR, remote: { address: remote.address, port: ROCE_PORT }, pathMtu: MTU_BYTES[rtr.pathMtu] ?? 1024,
      destQpn: rtr.destQpn, rqPsn: rtr.rqPsn, maxDestRdAtomic: Math.max(1, rtr.maxDestRdAtomic), minRnrTimer: rtr.minRnrTimer || 12,
    })
    const rts = ch.initQpAttr(h, 3)
    qp.modify({ state: QpState.RTS, sqPsn: rts.sqPsn, timeout: rts.timeout || 14, retryCnt: rts.retryCnt, rnrRetry: rts.rnrRetry, maxRdAtomic: Math.max(1, rts.maxRdAtomic) })
  }

  #established(role: 'active' | 'passive', h: number, qp: QueuePair, privateData: Uint8Array, local: CmAddress, remote: CmAddress): VerbsCmConnection {
    const c = new VerbsCmConnection(this.#router, role, h, qp, privateData, local, remote, (x) => this.#connections.delete(x))
    this.#connections.add(c)
    return c
  }

  #onRequest(e: CmEvent): void {
    const listener = this.#listeners.get(e.listenHandle)
    if (listener === undefined || this.#closed) {
      try {
        this.#router.channel.reject(e.handle)
      } catch {
        // rdma_cm answers it when the id is destroyed
      }
      this.#router.destroy(e.handle)
      return
    }
    this.#pending.add(e.handle)
    void this.#decide(listener, e)
  }

  async #decide(listener: VerbsCmListener, e: CmEvent): Promise<void> {
    const r = this.#router
    const h = e.handle
    const o = listener.options
    let qp: QueuePair | null = null
    let answered = false
    try {
      const info = r.channel.info(h)
      const target = cmTarget(info.remote.address, info.remote.port)
      let decision: CmDecision
      try {
        decision = o.onRequest === undefined ? undefined : await o.onRequest({ remote: info.remote, local: info.local, privateData: e.privateData ?? EMPTY })
      } catch {
        decision = { reject: true }
      }
      if (!this.#pending.has(h)) return // the manager was closed meanwhile
      if (decision !== undefined && decision.reject === true) {
        const data = checkCmPrivateData('reject private data', decision.privateData, PRIVATE_DATA_MAX.reject)
        answered = true
        r.channel.reject(h, data)
        return this.#dropRequest(h, null)
      }
      const repData = checkCmPrivateData('accept private data', decision?.privateData, PRIVATE_DATA_MAX.accept)
      this.#sameDevice(h, target)
      qp = this.#makeQp(h, { ...o, ...(decision?.qp === undefined ? {} : { qp: decision.qp }), ...(decision?.prepare === undefined ? {} : { prepare: decision.prepare }) }, info.portNum)
      this.#toRts(h, qp)
      const up = r.next(h, 'RDMA_CM_EVENT_ESTABLISHED', target)
      r.channel.accept(h, { qpNum: qp.qpn, privateData: repData })
      answered = true
      await up
      if (!this.#pending.delete(h) || listener.closed) return this.#dropRequest(h, qp)
      listener.established(this.#established('passive', h, qp, e.privateData ?? EMPTY, info.local, info.remote))
    } catch {
      // A request that does not become a connection (bad decision, no QP, the REP timed out, the
      // peer's REJ): the requester hears a REJ or rdma_cm's own, the id and the QP are freed.
      if (!answered && this.#pending.has(h)) {
        try {
          r.channel.reject(h)
        } catch {
          // rdma_cm answered already
        }
      }
      await this.#dropRequest(h, qp)
    }
  }

  async #dropRequest(h: number, qp: QueuePair | null): Promise<void> {
    this.#pending.delete(h)
    this.#router.destroy(h)
    if (qp !== null) await qp.close().catch(() => {})
  }
}

/** The rdma_cm connection manager for a context on a verbs device (one event channel; several per context are fine). */
export function createCm(ctx: Context, options: VerbsCmOptions = {}): VerbsConnectionManager {
  return new VerbsConnectionManager(ctx, options)
}
