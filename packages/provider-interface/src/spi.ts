/**
 * The provider interface (SPI): what a provider implements so core can drive it.
 *
 * Providers implement verbs-level objects only; sessions, striping, stats and
 * the control plane live in core and are written once for every provider.
 *
 * Rules every provider follows (the conformance suite checks them):
 * - Completions are never delivered synchronously from inside a post call:
 *   a provider calls the CQ's notify callback from a later macrotask, or from a
 *   microtask queued by a callback that is not a post call (e.g. at the end of
 *   a socket receive callback, as softroce does for latency-class QPs). The package's
 *   `CompletionRing` implements both.
 * - Completions of one QP's send queue are polled in the order the WRs were
 *   posted; likewise for its receive queue. Unsignaled send WRs produce a
 *   completion only when they fail. Core retires the unsignaled send WRs before
 *   a completion as successful; any other WR completed out of order, or a
 *   completion for no pending WR, fails those WRs with ERR_PROVIDER_CONTRACT and
 *   moves the QP to ERR.
 * - `poll` hands its WorkCompletion objects over: each is a fresh object the
 *   provider never touches again (core gives it to the application and sets
 *   its `wrId` back to the application's own, in place).
 * - `postSend` borrows its WR: the object, its SGE list and entries are the
 *   caller's again once it returns (core fills one object per QP for every raw
 *   post), so a provider copies whatever it keeps, e.g. a WR held back in SQD.
 * - When a QP enters ERR (a fatal error, retries exhausted, or `modify({state:'ERR'})`),
 *   every outstanding send and receive WR completes with WR_FLUSH_ERR, in
 *   post order, after any completion already due. WRs posted to a QP in ERR
 *   complete at once with WR_FLUSH_ERR.
 * - `destroy()` of a QP drops outstanding WRs without completions (as
 *   ibv_destroy_qp does); core moves a QP to ERR and drains it before destroying
 *   it, so users of core see every WR complete.
 * - A remote access violation (bad rkey, range outside the region, missing
 *   access flag) completes the requester's WR with REM_ACCESS_ERR, moves the
 *   requester QP to ERR and leaves the target memory untouched.
 * - Objects are destroyed children first: QPs, then CQs and MRs, then the PD,
 *   then the device. Providers may refuse a destroy out of order with ERR_QP_STATE.
 */
import type { CompletionOpcode, Opcode, PathMtu, QpState, WcStatus } from './constants.js'

export interface ProviderCapabilities {
  /** Payload encryption per QP (AEAD with per-QP keys). */
  readonly encryption: boolean
  /** ATOMIC_CMP_AND_SWP and ATOMIC_FETCH_AND_ADD. */
  readonly atomics: boolean
  /** RDMA_WRITE_WITH_IMM and SEND_WITH_IMM. */
  readonly immediate: boolean
  readonly maxMtu: PathMtu
  readonly maxQps: number
  readonly maxQpWr: number
  readonly maxSge: number
  readonly maxInline: number
  readonly maxMrSize: number
  /** The provider enforces per-QP weights and rate limits. */
  readonly qosScheduling: boolean
}

export interface DeviceInfo {
  /** Device name, e.g. `mock0`, `rxe0`, `softroce0`. */
  readonly name: string
  /** The address peers send RoCE traffic to (IPv4 or IPv6 text form). */
  readonly address: string
  /** The UDP port peers send RoCE traffic to (4791 unless configured). */
  readonly port: number
  /**
   * The UDP source port of every packet this device sends, when it is fixed (softroce: its
   * socket's port). Absent when it varies per QP (kernel rxe and RoCE NICs pick one per flow):
   * peers then bind the device's QPs to its address only.
   */
  readonly sourcePort?: number
  /**
   * Transport extensions beyond RoCEv2 the device speaks with peers that announce the same one
   * (softroce: `selective-repeat`). Announced in the session negotiation with the endpoint; a
   * provider uses one on a QP only when the remote's endpoint names it too. Absent: none.
   */
  readonly extensions?: readonly string[]
  /** The GID, as an IPv6 text address (IPv4-mapped for IPv4). */
  readonly gid: string
}

export interface Provider {
  readonly name: string
  /** The provider interface version this provider implements (SPECIFICATION_VERSION of the package it was built with); core refuses another major version. */
  readonly specificationVersion: string
  readonly capabilities: ProviderCapabilities
  openDevice(): Promise<ProviderDevice>
  /** The package that made this provider and the core versions it works with; createContext refuses another core (ERR_PROVIDER_CORE_MISMATCH). */
  readonly package?: ProviderPackage
}

/** A provider package's name, version and its peer range for @rdma-session/core (null: not declared). */
export interface ProviderPackage {
  readonly name: string
  readonly version: string
  readonly coreRange: string | null
}

export interface ProviderDevice {
  readonly info: DeviceInfo
  allocPd(): ProviderPd
  /** Releases the device. Every child must be destroyed first. */
  close(): Promise<void>
  /** Optional: the device's transport counters (see ProviderMetrics); core exports them in the Prometheus format. */
  metrics?(): ProviderMetrics
}

/**
 * Counters a provider keeps, for a device (`ProviderDevice.metrics?()`) or a QP
 * (`ProviderQp.metrics?()`). Both hooks are optional. Values only grow (they are
 * exported as Prometheus counters); names are camelCase and become snake_case metric
 * names (`retransmits` -> `rdma_session_device_retransmits_total`). Names to use
 * where they apply, so dashboards work across providers: `packetsSent`, `bytesSent`,
 * `packetsReceived`, `bytesReceived`, `retransmits`, `timeouts`; labeled `naksSent`
 * and `naksReceived` by `kind` (`PSN_SEQUENCE_ERROR`, `RNR`, `INVALID_REQUEST`,
 * `REMOTE_ACCESS_ERROR`, `REMOTE_OPERATIONAL_ERROR`), `drops` by `reason`.
 * Providers call them on demand (a scrape): return a fresh plain object.
 */
export interface ProviderMetrics {
  readonly counters: Readonly<Record<string, number>>
  /** Counters split by one label, e.g. `{ drops: { label: 'reason', values: { badIcrc: 1 } } }`. */
  readonly labeled?: Readonly<Record<string, ProviderLabeledCounter>>
}

export interface ProviderLabeledCounter {
  /** The label's name (`kind`, `reason`, …). */
  readonly label: string
  readonly values: Readonly<Record<string, number>>
}

export interface ProviderPd {
  /** `access` is a bit set of AccessFlag. The provider keeps `buffer` alive until deregistered. */
  registerMemory(buffer: Uint8Array, access: number): ProviderMr
  createCq(depth: number): ProviderCq
  createQp(init: ProviderQpInit): ProviderQp
  dealloc(): void
}

export interface ProviderMr {
  readonly lkey: number
  readonly rkey: number
  /** The region's start address as the remote side names it in RDMA ops. */
  readonly addr: number
  readonly length: number
  readonly access: number
  deregister(): void
}

export interface ProviderCq {
  readonly depth: number
  /** Moves up to `max` completions into a new array (possibly empty). */
  poll(max: number): WorkCompletion[]
  /** Core calls this once; the provider calls `cb` (asynchronously) whenever new completions are ready to poll. */
  setNotify(cb: () => void): void
  destroy(): void
}

export interface ProviderQp {
  /** The 24-bit QP number; unpredictable for providers that face a network. */
  readonly qpn: number
  readonly state: QpState
  /** Core checks the transition and attributes first (checkQpTransition); the provider applies them. */
  modify(attrs: QpModifyAttrs): void
  query(): QpAttrs
  /** Queues one send WR, borrowed until it returns (see the rules above). Throws QueueFullError when the send queue holds maxSendWr WRs. */
  postSend(wr: SendWorkRequest): void
  /** Queues one receive WR. Throws QueueFullError when the receive queue is full. */
  postRecv(wr: RecvWorkRequest): void
  /** Called by the provider when the QP enters ERR on its own (async event IBV_EVENT_QP_FATAL and the like). */
  setEventHandler(cb: (event: QpEvent) => void): void
  /** Releases the QP; outstanding WRs are dropped without completions. */
  destroy(): void
  /** Optional: this QP's transport counters (see ProviderMetrics). */
  metrics?(): ProviderMetrics
}

export interface QpEvent {
  readonly type: 'fatal' | 'path-migrated' | 'last-wqe-reached'
  readonly qpn: number
  readonly reason: string
}

/** One QP's quality of service, fixed at creation. */
export interface QpQos {
  /** IB service level, 0–15. */
  readonly serviceLevel: number
  /** IP traffic class byte (DSCP << 2 | ECN). */
  readonly trafficClass: number
  /** A free-form class name such as `latency` or `bulk`. */
  readonly className: string
  /** Relative share of the link when QPs compete; 1 to 1000. */
  readonly weight: number
  /** Bytes per second this QP may send; 0 means unlimited. */
  readonly rateLimitBps: number
}

export interface ProviderQpInit {
  readonly sendCq: ProviderCq
  readonly recvCq: ProviderCq
  readonly maxSendWr: number
  readonly maxRecvWr: number
  readonly maxSendSge: number
  readonly maxRecvSge: number
  readonly maxInlineData: number
  readonly qos: QpQos
}

/** The remote end of an RC connection (the address vector). */
export interface RemoteEndpoint {
  readonly address: string
  readonly port: number
  /**
   * The UDP source port of the remote's packets, when the remote announced a fixed one (a
   * softroce peer): providers that check sources then accept packets from this address AND
   * port only. Absent: the address is checked (rxe and NICs vary the source port per QP).
   */
  readonly sourcePort?: number
  /** The transport extensions the remote announced (DeviceInfo.extensions); absent: none (kernel rxe, NICs). */
  readonly extensions?: readonly string[]
}

/** Per-QP encryption material, installed at RTR. Keys are 32 bytes for aes-256-gcm. */
export interface QpEncryption {
  readonly suite: 'aes-256-gcm'
  /** Key for packets this QP sends. */
  readonly txKey: Uint8Array
  /** Key for packets this QP receives. */
  readonly rxKey: Uint8Array
  /** Key epoch; raised by rekey. */
  readonly epoch: number
}

/** Encapsulation on the wire: what goes into the IP/UDP headers of this QP's packets. */
export interface QpEncapsulation {
  /** UDP source port (flow entropy); 0 lets the provider choose. */
  readonly udpSourcePort: number
  /** DSCP, 0–63. */
  readonly dscp: number
  /** ECN bits, 0–3. */
  readonly ecn: number
  /** IP hop limit / TTL, 1–255. */
  readonly hopLimit: number
}

/** Attributes of `ibv_modify_qp`, as far as RC RoCE needs them. Which ones a transition requires: see qp-state-machine.ts. */
export interface QpModifyAttrs {
  readonly state: QpState
  // RESET -> INIT
  readonly accessFlags?: number
  readonly portNum?: number
  readonly pkeyIndex?: number
  // INIT -> RTR
  readonly remote?: RemoteEndpoint
  readonly pathMtu?: PathMtu
  readonly destQpn?: number
  readonly rqPsn?: number
  readonly maxDestRdAtomic?: number
  /** Minimum RNR NAK timer, IB encoding 0–31. */
  readonly minRnrTimer?: number
  readonly encapsulation?: QpEncapsulation
  readonly encryption?: QpEncryption | null
  // RTR -> RTS
  readonly sqPsn?: number
  /** Local ACK timeout, IB encoding 0–31 (4.096 µs * 2^timeout; 0 = infinite). */
  readonly timeout?: number
  /** Transport retries, 0–7. */
  readonly retryCnt?: number
  /** RNR retries, 0–7 (7 = infinite). */
  readonly rnrRetry?: number
  readonly maxRdAtomic?: number
}

/** The attributes a QP currently has (`ibv_query_qp`). */
export interface QpAttrs extends Omit<QpModifyAttrs, 'encryption'> {
  readonly qpn: number
  readonly encrypted: boolean
}

export interface Sge {
  readonly addr: number
  readonly length: number
  readonly lkey: number
}

export interface SendWorkRequest {
  readonly wrId: number
  readonly opcode: Opcode
  readonly sgList: readonly Sge[]
  /** Produce a completion on success (failures always complete). */
  readonly signaled: boolean
  /** 32-bit immediate data for *_WITH_IMM. */
  readonly imm?: number
  /** RDMA and atomic ops: the remote address and rkey. */
  readonly remoteAddr?: number
  readonly rkey?: number
  /** ATOMIC_CMP_AND_SWP: the compare value; ATOMIC_FETCH_AND_ADD: the addend. */
  readonly compareAdd?: bigint
  /** ATOMIC_CMP_AND_SWP: the swap value. */
  readonly swap?: bigint
  /**
   * Inline payload (SEND, SEND_WITH_IMM, RDMA_WRITE, RDMA_WRITE_WITH_IMM only): the provider
   * copies these bytes at post time and ignores `sgList`; at most `maxInline` bytes.
   */
  readonly inlineData?: Uint8Array
}

export interface RecvWorkRequest {
  readonly wrId: number
  readonly sgList: readonly Sge[]
}

export interface WorkCompletion {
  readonly wrId: number
  readonly status: WcStatus
  readonly opcode: CompletionOpcode
  /** Bytes received (receive completions) or transferred. */
  readonly byteLen: number
  readonly qpn: number
  readonly imm?: number
  /** Provider-specific detail for failures (e.g. the NAK syndrome). */
  readonly vendorErr?: number
}
