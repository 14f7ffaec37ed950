/** The entry point: a context opens one provider device and owns its PD, memory, CQs, QPs and sessions. */
import { randomInt } from 'node:crypto'
import { accessNamesToBits, type AccessName } from '@rdma-session/provider-interface'
import { CompletionQueue } from './completion-queue.js'
import { ClosedError, InvalidArgumentError, UnsupportedError } from './errors.js'
import { MemoryRegion, type RegionRegistrar, type RegistrableMemory } from './memory-region.js'
import { collectMetrics, type MetricFamily, type PrometheusOptions } from './metrics/families.js'
import { loadProvider } from './provider-loader.js'
import { assertProvider } from './provider-shape.js'
import { checkProviderCore } from './provider-package.js'
import { QueuePair, type QpCaps } from './queue-pair.js'
import { normalizeQos, type QosSpec } from './session/qos.js'
import { SessionManager } from './session/session-manager.js'
import type { Session } from './session/session.js'
import { connectSession, dialPeer, joinSession, listenForPeers, type ConnectOptions, type DialOptions, type JoinOptions, type ListenOptions, type PeerServer, type WsPeerChannel } from './control/ws-peer-channel.js'
import type { DeviceInfo, Provider, ProviderCapabilities, ProviderDevice, ProviderPd } from '@rdma-session/provider-interface'
import type { CmCapableProvider } from '@rdma-session/provider-interface'
import { connectCmQp, connectCmSession, type CmQpConnectOptions, type CmSessionOptions, type CoreConnectionManager } from './cm/cm-connect.js'
import { CmServer, type CmListenOptions } from './cm/cm-listen.js'
import type { CoreCmConnection } from './cm/cm-session-channel.js'
import { isCmUrl } from './cm/cm-url.js'

export interface ContextOptions {
  /** A provider instance (e.g. `mock()`), or a name/package to import. Default: $RDMA_SESSION_PROVIDER, else 'mock'. */
  readonly provider?: Provider | string
  /** Options for a provider loaded by name. */
  readonly providerOptions?: Record<string, unknown>
}

export interface CreateQpOptions {
  readonly sendCq?: CompletionQueue
  readonly recvCq?: CompletionQueue
  readonly caps?: Partial<QpCaps>
  readonly qos?: QosSpec
  /** Traffic class when qos.trafficClass is not given (sessions pass their DSCP/ECN). */
  readonly defaultTrafficClass?: number
}

export const DEFAULT_QP_CAPS: QpCaps = { maxSendWr: 128, maxRecvWr: 128, maxSendSge: 4, maxRecvSge: 4, maxInlineData: 64 }

/** A random starting PSN (24 bits), as the security model asks. */
export function randomPsn(): number {
  return randomInt(0, 0x1000000)
}

export class Context {
  readonly provider: Provider
  readonly device: ProviderDevice
  readonly pd: ProviderPd
  readonly sessions: SessionManager
  readonly #regions = new Set<MemoryRegion>()
  readonly #registrar: RegionRegistrar = {
    register: (bytes, access) => {
      this.#checkOpen()
      return this.pd.registerMemory(bytes, access)
    },
    forget: (r) => this.#regions.delete(r),
    adopt: (r) => this.#regions.add(r),
  }
  readonly #cqs = new Set<CompletionQueue>()
  readonly #qps = new Set<QueuePair>()
  /** Control-plane servers and channels, closed with the context. */
  readonly #control = new Set<{ close(): unknown }>()
  /** Open control-plane servers (ctx.listen), for their admission metrics. */
  readonly #listeners = new Set<PeerServer>()
  #closed: Promise<void> | null = null
  #cm: CoreConnectionManager | null = null

  constructor(provider: Provider, device: ProviderDevice) {
    this.provider = provider
    this.device = device
    this.pd = device.allocPd()
    this.sessions = new SessionManager(this)
  }

  get capabilities(): ProviderCapabilities {
    return this.provider.capabilities
  }
  get info(): DeviceInfo {
    return this.device.info
  }
  /**
   * This context's RoCE endpoint ({ address, port }), which is the `remote` its peers see; with
   * `sourcePort` when the device sends every packet from one UDP port (peers then bind our QPs to it),
   * `extensions` when the device announces transport extensions (DeviceInfo.extensions).
   */
  get endpoint(): { address: string; port: number; sourcePort?: number; extensions?: readonly string[] } {
    const { address, port, sourcePort, extensions } = this.device.info
    return {
      address,
      port,
      ...(sourcePort === undefined ? {} : { sourcePort }),
      ...(extensions === undefined || extensions.length === 0 ? {} : { extensions: [...extensions] }),
    }
  }
  /** @internal The registered region with this rkey (sub-regions included), if any. */
  regionByRkey(rkey: number): MemoryRegion | undefined {
    for (const r of this.#regions) if (r.registered && r.rkey === rkey) return r
    return undefined
  }
    /** Live handles, for leak checks. */
  get handles(): { regions: number; cqs: number; qps: number; sessions: number } {
    return { regions: this.#regions.size, cqs: this.#cqs.size, qps: this.#qps.size, sessions: this.sessions.list().length }
  }

  registerMemory(memory: RegistrableMemory, options: { access?: readonly AccessName[] } = {}): MemoryRegion {
    this.#checkOpen()
    const bits = accessNamesToBits(options.access ?? ['local-write'])
    MemoryRegion.checkAccess(bits)
    const bytes = MemoryRegion.toBytes(memory)
    if (bytes.length > this.capabilities.maxMrSize) {
      throw new InvalidArgumentError(`${bytes.length} bytes exceed the provider's maximum region size ${this.capabilities.maxMrSize}`)
    }
    const region = new MemoryRegion(memory, this.pd.registerMemory(bytes, bits), this.#registrar)
    this.#regions.add(region)
    return region
  }

  createCq(options: { depth?: number } = {}): CompletionQueue {
    this.#checkOpen()
    const depth = options.depth ?? 256
    if (!Number.isInteger(depth) || depth < 1) throw new InvalidArgumentError(`CQ depth must be a positive integer, got ${String(depth)}`)
    const cq = new CompletionQueue(this.pd.createCq(depth))
    this.#cqs.add(cq)
    return cq
  }

  /** Destroys a CQ created by createCq. */
  destroyCq(cq: CompletionQueue): void {
    cq.close()
    this.#cqs.delete(cq)
  }

  /**
   * Creates an RC QP in RESET. Without CQs it gets its own CQ (shared by its send
   * and receive queues), destroyed with it.
   */
  createQp(options: CreateQpOptions = {}): QueuePair {
    this.#checkOpen()
    const max = this.capabilities
    const defaults: QpCaps = {
      maxSendWr: Math.min(DEFAULT_QP_CAPS.maxSendWr, max.maxQpWr),
      maxRecvWr: Math.min(DEFAULT_QP_CAPS.maxRecvWr, max.maxQpWr),
      maxSendSge: Math.min(DEFAULT_QP_CAPS.maxSendSge, max.maxSge),
      maxRecvSge: Math.min(DEFAULT_QP_CAPS.maxRecvSge, max.maxSge),
      maxInlineData: Math.min(DEFAULT_QP_CAPS.maxInlineData, max.maxInline),
    }
    const caps = { ...defaults, ...options.caps }
    this.#checkCaps(caps)
    const qos = normalizeQos(options.qos, options.defaultTrafficClass)
    const ownCq = options.sendCq === undefined && options.recvCq === undefined ? this.createCq({ depth: caps.maxSendWr + caps.maxRecvWr }) : null
    const sendCq = options.sendCq ?? ownCq ?? options.recvCq!
    const recvCq = options.recvCq ?? ownCq ?? sendCq
    let provider
    try {
      provider = this.pd.createQp({ sendCq: sendCq.provider, recvCq: recvCq.provider, ...caps, qos })
    } catch (err) {
      if (ownCq !== null) this.destroyCq(ownCq)
      throw err
    }
    const qp = new QueuePair(provider, sendCq, recvCq, caps, qos, randomPsn(), { atomics: max.atomics, immediate: max.immediate, provider: this.provider.name }, (closed) => {
      this.#qps.delete(closed)
      if (ownCq !== null) this.destroyCq(ownCq)
    })
    this.#qps.add(qp)
    return qp
  }

  // ---- control plane (ws)

  /**
   * Serves the control plane on a TCP port or Unix socket: peers authenticate, then open sessions, add QPs, join with tokens, rekey.
   * With `{ cm: { port } }`: listens on an rdma_cm port instead (see CmServer): rdma-session peers open
   * sessions (`ctx.connect('rdma-cm://…')`), plain rdma_cm applications (rping, perftest -R) get lone QPs.
   */
  async listen(options: CmListenOptions): Promise<CmServer>
  async listen(options: ListenOptions): Promise<PeerServer>
  async listen(options: ListenOptions | CmListenOptions): Promise<PeerServer | CmServer> {
    this.#checkOpen()
    if (typeof options === 'object' && options !== null && 'cm' in options) {
      const server = new CmServer(this.sessions, this.connectionManager(), options.cm, this.capabilities.maxMtu)
      this.#control.add(server)
      const close = server.close.bind(server)
      server.close = () => {
        this.#control.delete(server)
        close()
      }
      return server
    }
    const server = await listenForPeers(this, options as ListenOptions)
    this.#control.add(server)
    this.#listeners.add(server)
    const close = server.close.bind(server)
    server.close = () => {
      this.#listeners.delete(server)
      this.#control.delete(server)
      return close()
    }
    return server
  }

  /**
   * The provider's rdma_cm connection manager (created on first use, closed with the context);
   * `options` are the provider's (softroce: `timing`, `peerRocePort`) and count only on the call that
   * creates it. ERR_UNSUPPORTED when the provider has no rdma_cm (the createConnectionManager hook, cm-spi.ts).
   */
  connectionManager(options?: Readonly<Record<string, unknown>>): CoreConnectionManager {
    this.#checkOpen()
    if (this.#cm !== null) return this.#cm
    const hook = (this.provider as Provider & CmCapableProvider<Context, QueuePair>).createConnectionManager
    if (typeof hook !== 'function') throw new UnsupportedError('rdma_cm (no createConnectionManager hook)', this.provider.name)
    this.#cm = hook.call(this.provider, this, options)
    return this.#cm
  }

  /**
   * One plain rdma_cm connection (`rdma-cm://host:port`): a lone QP in RTS, as rping or perftest -R
   * connect, to any rdma_cm listener. The QP is the application's (close it); `disconnect()` sends the DREQ.
   */
  async connectQp(url: string, options: CmQpConnectOptions = {}): Promise<CoreCmConnection> {
    this.#checkOpen()
    return connectCmQp(this.connectionManager(), url, options)
  }

  /** @internal The control-plane servers this context listens with (ctx.listen) and has not closed. */
  get listeners(): readonly PeerServer[] {
    return [...this.#listeners]
  }

  /** An authenticated control channel to a peer (`ws://host:port`), for several sessions: `ctx.sessions.create({ peer: channel })`. */
  async dial(url: string, options: DialOptions): Promise<WsPeerChannel> {
    this.#checkOpen()
    const channel = await dialPeer(this, url, options)
    this.#control.add(channel)
    channel.onClosed(() => this.#control.delete(channel))
    return channel
  }

  /**
   * Connects to a peer's control plane and creates a session with its first QPs (one round trip after the handshake).
   * `rdma-cm://host:port`: opens the session with an rdma-session rdma_cm listener (`ctx.listen({ cm })`), one CM connection per QP.
   */
  async connect(url: `rdma-cm://${string}`, options?: CmSessionOptions): Promise<Session>
  async connect(url: string, options: ConnectOptions): Promise<Session>
  async connect(url: string, options?: ConnectOptions | CmSessionOptions): Promise<Session> {
    this.#checkOpen()
    if (isCmUrl(url)) return connectCmSession(this.sessions, this.connectionManager(), url, options as CmSessionOptions | undefined)
    return connectSession(this, url, options as ConnectOptions)
  }

  /** Takes part in a session another connection or process of this host holds, with its join token. */
  async join(url: string, options: JoinOptions): Promise<Session> {
    this.#checkOpen()
    return joinSession(this, url, options)
  }

  /**
   * This context's sessions, QPs and device counters as metric families (collectMetrics); for
   * Prometheus, register an RdmaSessionCollector from @rdma-session/core/prometheus.
   */
  metrics(options?: PrometheusOptions): MetricFamily[] {
    return collectMetrics(this, options)
  }

  /** Closes every session, QP, CQ and region, then the device. */
  close(): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  get closed(): boolean {
    return this.#closed !== null
  }

  #checkOpen(): void {
    if (this.#closed !== null) throw new ClosedError('context')
  }

  #checkCaps(caps: QpCaps): void {
    const max = this.capabilities
    const check = (name: keyof QpCaps, min: number, limit: number): void => {
      const v = caps[name]
      if (!Number.isInteger(v) || v < min || v > limit) throw new InvalidArgumentError(`QP ${name} must be an integer from ${min} to ${limit}, got ${String(v)}`, { attribute: name })
    }
    check('maxSendWr', 1, max.maxQpWr)
    check('maxRecvWr', 1, max.maxQpWr)
    check('maxSendSge', 1, max.maxSge)
    check('maxRecvSge', 1, max.maxSge)
    check('maxInlineData', 0, max.maxInline)
    if (this.#qps.size >= max.maxQps) throw new UnsupportedError(`more than ${max.maxQps} QPs`, this.provider.name)
  }

  async #close(): Promise<void> {
    await this.sessions.closeAll()
    for (const c of [...this.#control]) await c.close()
    this.#control.clear()
    await Promise.all([...this.#qps].map((qp) => qp.close()))
    this.#cm?.close()
    for (const cq of this.#cqs) cq.close()
    this.#cqs.clear()
    for (const r of [...this.#regions]) r.deregister()
    this.pd.dealloc()
    await this.device.close()
  }
}

/** Opens a context on a provider instance or on a provider found by name. */
export async function createContext(options: ContextOptions = {}): Promise<Context> {
  const choice = options.provider ?? (process.env.RDMA_SESSION_PROVIDER || 'mock')
  const provider = typeof choice === 'string' ? await loadProvider(choice, options.providerOptions) : choice
  assertProvider(provider)
  checkProviderCore(provider)
  return new Context(provider, await provider.openDevice())
}
