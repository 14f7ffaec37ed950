/**
 * The optional connection-manager hook of the provider SPI: how core reaches a provider's rdma_cm
 * (the InfiniBand CM over RoCEv2 as librdmacm speaks it) without importing the provider.
 *
 * A provider that can speak rdma_cm adds one method to its Provider object:
 *
 *     createConnectionManager(ctx: Context, options?: Record<string, unknown>): ProviderConnectionManager
 *
 * Core calls it at most once per context, the first time the application uses rdma_cm
 * (`ctx.listen({ cm })`, `ctx.connect('rdma-cm://…')`, `ctx.connectQp('rdma-cm://…')`), and closes
 * the manager with the context. `ctx` is the core Context; the provider creates each connection's QP
 * with `ctx.createQp(setup.qp)` (so QPs, sessions and stats work on it) and moves it INIT → RTR → RTS
 * itself with the attributes the CM exchange settles (PSNs, QPNs, path MTU, RDMA read depths).
 * `options` are the provider's own (e.g. softroce: `timing`, `peerRocePort`); unknown keys are ignored.
 *
 * The shapes below are structural: provider-softroce's ConnectionManager, CmListener and
 * CmConnection satisfy them as they are; provider-verbs (librdmacm) exposes the same shape.
 * `Qp` is the core QueuePair type (kept generic so this file imports nothing).
 */

/** An rdma_cm address: IP address and rdma_cm port (RDMA_PS_TCP port space, service ID 0x0000000001060000 | port). */
export interface CmAddress {
  readonly address: string
  readonly port: number
}

/** How a connection's QP is made. Every field is optional; the provider picks rdma_cm's defaults. */
export interface CmQpSetup<Qp> {
  /** Passed to ctx.createQp (caps, qos, defaultTrafficClass). */
  readonly qp?: object
  /** Path MTU. Active side: what the REQ announces (default 1024). Passive side: the REQ's, capped by the device. */
  readonly pathMtu?: 256 | 512 | 1024 | 2048 | 4096
  /** Runs on the new QP in INIT, before the REQ/REP leaves: post receives here so the peer's first SEND finds one. Throwing fails the connection. */
  readonly prepare?: (qp: Qp) => void
}

/** A connection request as the passive side sees it, before it is accepted. */
export interface CmConnectRequest {
  /** The requester's IP address (the REQ's source) and its rdma_cm source port (rdma_cm's private data header). */
  readonly remote: CmAddress
  /** Our address and the port listened on. */
  readonly local: CmAddress
  /** The REQ's user private data: what follows rdma_cm's 36-byte header, at most 56 bytes (copy it to keep it). */
  readonly privateData: Uint8Array
}

/**
 * The listener's answer to a request (`onRequest`):
 * - `undefined` or `{ privateData?, qp?, prepare? }`: accept: create the QP (with `qp` and `prepare`, when
 *   given, in place of the listener's), bring it to RTS, send a REP carrying `privateData` (at most 196 bytes).
 * - `{ reject: true, privateData? }`: send a REJ, reason 28 (consumer defined), carrying `privateData`
 *   (at most 148 bytes); the active side's connect() rejects with it (see CmConnectParams).
 * A throwing or rejecting onRequest counts as `{ reject: true }`.
 */
export type CmRequestDecision<Qp = unknown, QpOptions extends object = object> =
  | void
  | { readonly reject?: false; readonly privateData?: Uint8Array; readonly qp?: QpOptions; readonly prepare?: (qp: Qp) => void }
  | { readonly reject: true; readonly privateData?: Uint8Array }

export interface CmListenParams<Qp> extends CmQpSetup<Qp> {
  /** The rdma_cm port, 1..65535. */
  readonly port: number
  /** Half-open connections (REQ seen, not yet established) held at most (default 128); beyond, the oldest is rejected. */
  readonly backlog?: number
  /** Decides on each request; while it runs, the provider keeps the requester waiting (MRA). Default: accept. */
  readonly onRequest?: (request: CmConnectRequest) => CmRequestDecision<Qp> | Promise<CmRequestDecision<Qp>>
}

export interface CmConnectParams<Qp> extends CmQpSetup<Qp> {
  /** The listener's IP address (the device's address family; no names). */
  readonly host: string
  /** The listener's rdma_cm port. */
  readonly port: number
  /** REQ user private data, at most 56 bytes. */
  readonly privateData?: Uint8Array
}

/** Why a connection ended: we or the peer disconnected, or it never got established. */
export interface CmEnding {
  readonly by: 'local' | 'remote' | 'rejected' | 'timeout' | 'closed'
  /** The DREQ's / REJ's private data, if any. */
  readonly privateData: Uint8Array
}

/** An established connection. */
export interface CmConnectionHandle<Qp> {
  /** Its RC QP, in RTS once established (created with ctx.createQp: the application's to use; the provider closes it never). */
  readonly qp: Qp | null
  readonly remote: CmAddress
  readonly local: CmAddress
  /** The peer's private data: the REQ's user data (passive side), the REP's (active side). */
  readonly privateData: Uint8Array
  /** Resolves once, when the connection ends however it ends (the QP is then in ERR). */
  readonly disconnected: Promise<CmEnding>
  /** Sends a DREQ (at most 52 bytes of private data), moves the QP to ERR; resolves when the DREP came or the retries ran out. Idempotent. */
  disconnect(privateData?: Uint8Array): Promise<void>
}

export interface CmListenerHandle<Qp> {
  readonly port: number
  readonly closed: boolean
  /** The next established (accepted, RTU received) connection, in order. */
  accept(): Promise<CmConnectionHandle<Qp>>
  /** Stops listening (later REQs: REJ invalid service ID; half-open ones: REJ). Established connections stay. */
  close(): void
}

/**
 * What `createConnectionManager` returns.
 *
 * Errors: `listen` throws ERR_INVALID_ARGUMENT for a bad or taken port. `connect` rejects with
 * - ERR_CONNECTION_REFUSED when the peer sent a REJ; `details.rejReason` is the REJ reason number
 *   (28: consumer defined) and `details.privateData` (Uint8Array) the REJ's private data, which core
 *   reads to report session-level refusals;
 * - ERR_TIMEOUT when no REP came after the CM's retries;
 * - ERR_INVALID_ARGUMENT for a bad host, port or private data.
 */
export interface ProviderConnectionManager<Qp> {
  listen(params: CmListenParams<Qp>): CmListenerHandle<Qp>
  connect(params: CmConnectParams<Qp>): Promise<CmConnectionHandle<Qp>>
  /** Closes every listener and forgets every connection (their QPs go to ERR); releases the CM's resources (QP1, event channel). */
  close(): void
}

/** A Provider with the optional hook. */
export interface CmCapableProvider<Ctx, Qp> {
  createConnectionManager?(ctx: Ctx, options?: Readonly<Record<string, unknown>>): ProviderConnectionManager<Qp>
}
