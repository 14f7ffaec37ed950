/**
 * The connection manager of a softroce device: rdma_cm's conversation of CM MADs over QP1, so
 * that rdma_cm applications (rping, perftest -R, …) on kernel rxe or RoCE NICs connect to
 * softroce QPs and softroce QPs connect to them. `createCm(ctx)` takes a core context on a
 * softroce device; `cm.listen({ port })` and `cm.connect({ host, port })` give connections whose
 * `qp` is a core QueuePair in RTS, on the RC engine like any other QP.
 */
import { randomBytes, randomInt } from 'node:crypto'
import { QP_DEFAULTS } from '@rdma-session/rc-engine'
import {
  CmListenerBase, InvalidArgumentError, QpState, checkCmBacklog, checkCmPort, checkCmPrivateData, createCmQp,
  type CmConnectRequest, type CmRequestDecision, type PathMtu,
} from '@rdma-session/provider-interface'
import {
  type Context, type CreateQpOptions, type QueuePair,
} from '@rdma-session/core'
import { addressBytes } from '../wire/address.js'
import { GSI_QKEY, GSI_QPN, UdQp, type AddressHandle, type UdCompletion, type UdDevice } from '../ud/ud-qp.js'
import { CmCodecError, MsgRef, PRIVATE_DATA, RejReason, decodeCmMad, encodeCmMad, enumToMtu, mtuToEnum, type CmMessage, type CmRep, type CmReq } from './cm-messages.js'
import { addressToGid, decodeCmaHeader, encodeCmaHeader, gidToAddress, portOfServiceId, serviceIdOfPort, REQ_USER_PRIVATE_DATA } from './cma-header.js'
import { CmCounters, type CmCountersSnapshot } from './cm-drops.js'
import { CmConnection, type CmHost } from './cm-connection.js'
import { clampWait, ibaTimeToMs, requestWaitMs, resolveCmTiming, type CmTiming, type CmTimingOptions } from './cm-timing.js'

/** The RoCEv2 UDP port: where kernel rxe and NICs receive (their QP1 too). */
export const ROCE_PORT = 4791
const RD_ATOMIC = QP_DEFAULTS.maxRdAtomic
const EMPTY = new Uint8Array(0)

export interface CmOptions {
  /** Timeouts and retries (defaults as rdma_cm on RoCE; tests shorten them). */
  readonly timing?: CmTimingOptions
  /** Connections (any state, TIMEWAIT included) the CM holds at most; further REQs get REJ no resources. Default 4096. */
  readonly maxConnections?: number
  /** The UDP port peers' QP1 and QPs receive on (default 4791; softroce peers on other ports: theirs). */
  readonly peerRocePort?: number
}

/** How a connection's QP is made: core's createQp options, the INIT access flags, a hook before the exchange. */
export interface CmQpOptions {
  readonly qp?: CreateQpOptions
  /** QP access flags (AccessFlag bits) for the peer's RDMA READ/WRITE/atomics; default all. */
  readonly accessFlags?: number
  /** Runs on the new QP in INIT, before the REQ/REP is sent: post receives here. */
  readonly prepare?: (qp: QueuePair) => void
  /** Path MTU (active side: announced in the REQ; default 1024, what rdma_cm picks on a 1500-byte Ethernet). */
  readonly pathMtu?: PathMtu
  /**
   * Active side: the QP's local ACK timeout (4.096 µs × 2^t), also announced in the REQ (default
   * 14; Linux rdma_cm on RoCE uses 17: its packet lifetime 16, plus one). The passive side takes
   * the REQ's.
   */
  readonly ackTimeout?: number
}

export interface CmConnectOptions extends CmQpOptions {
  /** The listener's IP address (IPv4 or IPv6, the device's family). */
  readonly host: string
  /** The listener's rdma_cm port (service ID 0x0000000001060000 | port). */
  readonly port: number
  /** Up to 56 bytes after rdma_cm's header in the REQ. */
  readonly privateData?: Uint8Array
  /** Our rdma_cm port in the header (default: a random ephemeral port). */
  readonly sourcePort?: number
  /** The peer's RoCE UDP port (default: the CM's peerRocePort). */
  readonly peerRocePort?: number
}

/** A connection request as a listener sees it (`privateData`: what follows rdma_cm's header). */
export type CmRequest = CmConnectRequest

/**
 * What onRequest answers: accept (optionally with REP private data, up to 196 bytes; `qp` and
 * `prepare`, when given, replace the listener's for this connection) or reject (REJ consumer defined).
 */
export type CmDecision = CmRequestDecision<QueuePair, CreateQpOptions>

export interface CmListenOptions extends CmQpOptions {
  readonly port: number
  /** Half-open connections (REQ received, no RTU yet) at most; a REQ beyond evicts the oldest (REJ no resources). Default 128. */
  readonly backlog?: number
  /** Decide on a request (default: accept). While it runs, a duplicate REQ gets an MRA. */
  readonly onRequest?: (request: CmRequest) => CmDecision | Promise<CmDecision>
}

function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4
}

function sameAddress(family: 4 | 6, a: string, b: string): boolean {
  if (a === b) return true
  try {
    return Buffer.from(addressBytes(family, a)).equals(addressBytes(family, b))
  } catch {
    return false
  }
}

/** A listening rdma_cm port. */
export class CmListener extends CmListenerBase<CmConnection> {
  readonly port: number
  readonly backlog: number
  /** @internal */ readonly options: CmListenOptions
  /** @internal Passive connections not yet established, oldest first. */
  readonly halfOpen = new Set<CmConnection>()
  readonly #close: (l: CmListener) => void

  /** @internal */
  constructor(options: CmListenOptions, close: (l: CmListener) => void) {
    super()
    this.options = options
    this.port = options.port
    this.backlog = options.backlog ?? 128
    this.#close = close
  }

  /** Stops listening: further REQs for the port get REJ invalid service ID; half-open ones are rejected. */
  protected onClose(): void {
    for (const c of [...this.halfOpen]) c.rejectRequest(RejReason.NO_RESOURCES)
    this.#close(this)
  }
}

export class ConnectionManager {
  readonly ctx: Context
  readonly timing: CmTiming
  readonly counters = new CmCounters()
  readonly localCaGuid: bigint
  readonly #device: UdDevice
  readonly #qp1: UdQp
  readonly #family: 4 | 6
  readonly #address: string
  readonly #peerRocePort: number
  readonly #maxConnections: number
  readonly #conns = new Map<number, CmConnection>()
  /** Passive connections by the REQ that made them (address | CA GUID | comm ID): duplicates. */
  readonly #byReq = new Map<string, CmConnection>()
  readonly #reqKey = new Map<CmConnection, string>()
  readonly #listenerOf = new Map<CmConnection, CmListener>()
  readonly #listeners = new Map<number, CmListener>()
  /** Connections in TIMEWAIT / REJ_SENT, oldest first: the first to go when the CM is full. */
  readonly #settledOrder = new Set<CmConnection>()
  readonly #host: CmHost
  #tid = BigInt(randomInt(1, 0x7fffffff)) << 32n
  #closed = false

  constructor(ctx: Context, options: CmOptions = {}) {
    const device = ctx.device as unknown as Partial<UdDevice>
    if (typeof device.attachUd !== 'function' || typeof device.sendDatagram !== 'function') {
      throw new InvalidArgumentError(`createCm needs a context on a softroce device; ${ctx.provider.name} has no UD QP1`)
    }
    this.ctx = ctx
    this.#device = device as UdDevice
    this.#family = this.#device.family
    this.#address = this.#device.info.address
    this.timing = resolveCmTiming(options.timing)
    this.#peerRocePort = options.peerRocePort ?? ROCE_PORT
    this.#maxConnections = options.maxConnections ?? 4096
    this.localCaGuid = randomBytes(8).readBigUInt64BE(0)
    const self = this
    this.#host = {
      timing: this.timing,
      counters: this.counters,
      localCaGuid: this.localCaGuid,
      send: (peer, msg, tid) => this.#send(peer, msg, tid),
      newTid: () => this.#newTid(),
      settled: (c) => self.#settled(c),
    }
    try {
      this.#qp1 = new UdQp(this.#device, GSI_QPN, GSI_QKEY, (c) => this.#receive(c))
    } catch (err) {
      throw new InvalidArgumentError(`device ${ctx.info.name} already has QP1: one connection manager per device (${(err as Error).message})`)
    }
  }

  /** Sent, received and dropped MADs (drops by reason, UD-level drops of QP1 included). */
  snapshot(): CmCountersSnapshot & { readonly connections: number } {
    const s = this.counters.snapshot()
    const ud = this.#qp1.drops
    return { ...s, drops: { ...s.drops, udMalformed: ud.malformed, udBadPkey: ud.badPkey, udBadQkey: ud.badQkey }, connections: this.#conns.size }
  }

  /** Connections held (any state, TIMEWAIT included). */
  get connectionCount(): number {
    return this.#conns.size
  }

  // ---- API

  listen(options: CmListenOptions): CmListener {
    this.#checkOpen()
    const port = checkCmPort('listen port', options.port)
    checkCmBacklog(options.backlog)
    if (this.#listeners.has(port)) throw new InvalidArgumentError(`rdma_cm port ${port} is already listened on`)
    const l = new CmListener(options, (x) => {
      if (this.#listeners.get(x.port) === x) this.#listeners.delete(x.port)
    })
    this.#listeners.set(port, l)
    return l
  }

  async connect(o: CmConnectOptions): Promise<CmConnection> {
    this.#checkOpen()
    const host = this.#normalize(o.host)
    checkCmPort('connect port', o.port)
    const user = checkCmPrivateData('private data', o.privateData, REQ_USER_PRIVATE_DATA)
    const mtu = this.#mtu(o.pathMtu)
    const ackTimeout = o.ackTimeout ?? QP_DEFAULTS.timeout
    if (!Number.isInteger(ackTimeout) || ackTimeout < 1 || ackTimeout > 31) throw new InvalidArgumentError(`ackTimeout must be 1..31, got ${String(o.ackTimeout)}`)
    const srcPort = o.sourcePort ?? randomInt(32768, 61000)
    const peerRoce = o.peerRocePort ?? this.#peerRocePort
    const qp = this.#makeQp(o)
    const conn = new CmConnection(this.#host, 'active', this.#newCommId(), { address: host, port: peerRoce }, this.#newTid(), 'REQ_SENT',
      { address: this.#address, port: srcPort }, { address: host, port: o.port })
    conn.qp = qp
    const req: CmReq = {
      type: 'REQ', localCommId: conn.localCommId, serviceId: serviceIdOfPort(o.port), localCaGuid: this.localCaGuid, localQkey: 0,
      localQpn: qp.qpn, responderResources: RD_ATOMIC, initiatorDepth: RD_ATOMIC, remoteCmResponseTimeout: this.timing.responseTimeout,
      transportType: 0, endToEndFlowControl: false, startingPsn: qp.localPsn, localCmResponseTimeout: this.timing.responseTimeout,
      retryCount: QP_DEFAULTS.retryCnt, pkey: 0xffff, pathMtu: mtuToEnum(mtu), rnrRetryCount: QP_DEFAULTS.rnrRetry, maxCmRetries: this.timing.maxRetries, srq: false,
      primary: {
        localLid: 0xffff, remoteLid: 0xffff, localGid: addressToGid(this.#family, this.#address), remoteGid: addressToGid(this.#family, host),
        flowLabel: 0, packetRate: 0, trafficClass: 0, hopLimit: 64, sl: 0, subnetLocal: false, localAckTimeout: ackTimeout,
      },
      privateData: encodeCmaHeader({ family: this.#family, srcPort, srcAddress: this.#address, dstAddress: host }, user),
    }
    conn.onRep = (rep: CmRep) => {
      // Each side announces the PSN it expects to receive (Linux cm.c: rq_psn from its own REQ/REP,
      // sq_psn from the peer's); we announce qp.localPsn.
      qp.modify({ state: QpState.RTR, remote: { address: host, port: peerRoce }, pathMtu: mtu, destQpn: rep.localQpn, rqPsn: qp.localPsn, maxDestRdAtomic: RD_ATOMIC, minRnrTimer: QP_DEFAULTS.minRnrTimer })
      qp.modify({ state: QpState.RTS, sqPsn: rep.startingPsn, timeout: ackTimeout, retryCnt: QP_DEFAULTS.retryCnt, rnrRetry: QP_DEFAULTS.rnrRetry, maxRdAtomic: Math.max(1, Math.min(RD_ATOMIC, rep.responderResources)) })
    }
    this.#conns.set(conn.localCommId, conn)
    conn.startActive(req, requestWaitMs(this.timing, this.timing.responseTimeout))
    try {
      return await conn.established
    } catch (err) {
      await qp.close().catch(() => {})
      throw err
    }
  }

  /** Closes every listener and forgets every connection (no MAD sent; their QPs go to ERR); QP1 is released. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const l of [...this.#listeners.values()]) l.close()
    for (const c of [...this.#conns.values()]) c.close()
    this.#qp1.close()
  }

  // ---- helpers

  #checkOpen(): void {
    if (this.#closed) throw new InvalidArgumentError('the connection manager is closed')
  }

  #normalize(host: string): string {
    let h = host
    if (this.#family === 4 && h.startsWith('::ffff:') && h.includes('.')) h = h.slice(7)
    try {
      addressBytes(this.#family, h)
    } catch {
      throw new InvalidArgumentError(`host ${host} is not an IPv${this.#family} address (the device is bound to ${this.#address}); give an IP address, not a name`)
    }
    return h
  }

  #mtu(mtu: PathMtu | undefined): PathMtu {
    const max = this.ctx.capabilities.maxMtu
    return Math.min(mtu ?? 1024, max) as PathMtu
  }

  #makeQp(o: CmQpOptions): QueuePair {
    return createCmQp(() => this.ctx.createQp(o.qp ?? {}), o, { portNum: 1, pkeyIndex: 0 })
  }

  #newCommId(): number {
    let id = randomInt(1, 0xffffffff)
    while (this.#conns.has(id)) id = randomInt(1, 0xffffffff)
    return id
  }

  #newTid(): bigint {
    this.#tid = (this.#tid + 1n) & 0xffffffffffffffffn
    return this.#tid
  }

  #send(peer: AddressHandle, msg: CmMessage, tid: bigint): void {
    this.counters.sent[msg.type]++
    this.#qp1.postSend({ ah: peer, remoteQpn: GSI_QPN, remoteQkey: GSI_QKEY, payload: encodeCmMad(msg, tid) })
  }

  /** A REJ for a REQ that made no connection (Linux cm_issue_rej). */
  #rejectReq(peer: AddressHandle, req: CmReq, tid: bigint, reason: number): void {
    this.#send(peer, { type: 'REJ', localCommId: 0, remoteCommId: req.localCommId, messageRejected: MsgRef.REQ, reason, ari: EMPTY, privateData: EMPTY }, tid)
  }

  // ---- receive

  #receive(c: UdCompletion): void {
    if (this.#closed) return
    const d = decodeCmMad(c.payload)
    if (d instanceof CmCodecError) return this.counters.drop(d.reason)
    const msg = d.msg
    this.counters.received[msg.type]++
    if (msg.type === 'REQ') return this.#onReq(msg, d.tid, c)
    const conn = this.#conns.get(msg.remoteCommId)
    if (conn === undefined) return this.counters.drop('unknownCommId')
    if (!sameAddress(this.#family, c.address, conn.peer.address)) return this.counters.drop('wrongSource')
    if (conn.remoteCommId !== 0 && msg.localCommId !== conn.remoteCommId && !(msg.type === 'REJ' && msg.localCommId === 0)) return this.counters.drop('unknownCommId')
    conn.handle(msg, d.tid)
  }

  #onReq(req: CmReq, tid: bigint, c: UdCompletion): void {
    const peer: AddressHandle = { address: c.address, port: this.#peerRocePort }
    const key = `${c.address}|${req.localCaGuid}|${req.localCommId}`
    const dup = this.#byReq.get(key)
    if (dup !== undefined) return dup.duplicateReq()
    const refuse = (reason: number, drop: Parameters<CmCounters['drop']>[0]): void => {
      this.counters.drop(drop)
      this.#rejectReq(peer, req, tid, reason)
    }
    if (req.transportType !== 0 || req.srq) return refuse(RejReason.INVALID_TRANSPORT_TYPE, 'unsupportedTransport')
    const gid = gidToAddress(req.primary.localGid)
    if (gid.family !== this.#family || !sameAddress(this.#family, gid.address, c.address)) return refuse(RejReason.INVALID_GID, 'badGid')
    const port = portOfServiceId(req.serviceId)
    const listener = port === null ? undefined : this.#listeners.get(port)
    if (listener === undefined) return refuse(RejReason.INVALID_SERVICE_ID, 'noListener')
    const h = decodeCmaHeader(req.privateData)
    if ('error' in h || h.header.family !== this.#family || !sameAddress(this.#family, h.header.dstAddress, this.#address)) return refuse(RejReason.CONSUMER_DEFINED, 'badPrivateData')
    const mtu = enumToMtu(req.pathMtu)
    if (mtu === null) return refuse(RejReason.INVALID_MTU, 'badField')
    if (this.#conns.size >= this.#maxConnections) {
      // Ended connections kept for duplicates make room first; live ones never do.
      const oldest = this.#settledOrder.values().next().value as CmConnection | undefined
      if (oldest === undefined) return refuse(RejReason.NO_RESOURCES, 'tooManyConnections')
      oldest.close()
    }
    if (listener.halfOpen.size >= listener.backlog) {
      // SYN-queue style: the oldest half-open connection makes room (a flood cannot lock out a real client).
      const oldest = listener.halfOpen.values().next().value as CmConnection
      this.counters.backlogEvictions++
      oldest.rejectRequest(RejReason.NO_RESOURCES)
    }
    const conn = new CmConnection(this.#host, 'passive', this.#newCommId(), peer, tid, 'REQ_RCVD',
      { address: this.#address, port: port! }, { address: c.address, port: h.header.srcPort })
    conn.remoteCommId = req.localCommId
    conn.req = req
    conn.privateData = h.user
    this.#conns.set(conn.localCommId, conn)
    this.#byReq.set(key, conn)
    this.#reqKey.set(conn, key)
    this.#listenerOf.set(conn, listener)
    listener.halfOpen.add(conn)
    void this.#decide(listener, conn, req, Math.min(mtu, this.ctx.capabilities.maxMtu) as PathMtu)
  }

  async #decide(listener: CmListener, conn: CmConnection, req: CmReq, mtu: PathMtu): Promise<void> {
    const o = listener.options
    let decision: CmDecision
    try {
      decision = o.onRequest === undefined ? undefined : await o.onRequest({ remote: conn.remote, local: conn.local, privateData: conn.privateData })
    } catch {
      decision = { reject: true }
    }
    if (conn.state !== 'REQ_RCVD' && conn.state !== 'MRA_REQ_SENT') return
    if (decision !== undefined && decision.reject === true) return conn.rejectRequest(RejReason.CONSUMER_DEFINED, decision.privateData)
    if ((decision?.privateData?.length ?? 0) > PRIVATE_DATA.REP) return conn.rejectRequest(RejReason.CONSUMER_DEFINED)
    let qp: QueuePair | null = null
    const maxRdAtomic = Math.max(1, Math.min(RD_ATOMIC, req.responderResources))
    const maxDestRdAtomic = Math.max(1, Math.min(RD_ATOMIC, req.initiatorDepth))
    try {
      const own = decision ?? {}
      qp = this.#makeQp({ ...o, ...(own.qp === undefined ? {} : { qp: own.qp }), ...(own.prepare === undefined ? {} : { prepare: own.prepare }) })
      qp.modify({ state: QpState.RTR, remote: { address: conn.peer.address, port: conn.peer.port }, pathMtu: mtu, destQpn: req.localQpn, rqPsn: qp.localPsn, maxDestRdAtomic, minRnrTimer: QP_DEFAULTS.minRnrTimer })
      qp.modify({ state: QpState.RTS, sqPsn: req.startingPsn, timeout: req.primary.localAckTimeout || QP_DEFAULTS.timeout, retryCnt: req.retryCount, rnrRetry: req.rnrRetryCount, maxRdAtomic })
    } catch {
      if (qp !== null) void qp.close().catch(() => {})
      return conn.rejectRequest(RejReason.NO_QP)
    }
    const rep: CmRep = {
      type: 'REP', localCommId: conn.localCommId, remoteCommId: conn.remoteCommId, localQkey: 0, localQpn: qp.qpn, startingPsn: qp.localPsn,
      responderResources: maxDestRdAtomic, initiatorDepth: maxRdAtomic, targetAckDelay: 0, failoverAccepted: 0, endToEndFlowControl: false,
      rnrRetryCount: QP_DEFAULTS.rnrRetry, srq: false, localCaGuid: this.localCaGuid, privateData: decision?.privateData ?? EMPTY,
    }
    const waitMs = clampWait(this.timing, ibaTimeToMs(req.localCmResponseTimeout) + 2 * ibaTimeToMs(this.timing.packetLifeTime))
    conn.accept(qp, rep, waitMs, Math.min(req.maxCmRetries, this.timing.maxRetries))
    try {
      await conn.established
    } catch {
      return
    }
    listener.halfOpen.delete(conn)
    listener.established(conn)
  }

  /** A connection ended (TIMEWAIT/REJ_SENT: keep it for duplicates) or was forgotten (CLOSED). */
  #settled(c: CmConnection): void {
    const l = this.#listenerOf.get(c)
    if (l !== undefined && l.halfOpen.delete(c) && !c.wasEstablished) {
      // Never handed to the application: its QP is ours to release.
      if (c.qp !== null) void c.qp.close().catch(() => {})
    }
    if (c.state !== 'CLOSED') {
      this.#settledOrder.add(c)
      return
    }
    this.#settledOrder.delete(c)
    if (this.#conns.get(c.localCommId) === c) this.#conns.delete(c.localCommId)
    const key = this.#reqKey.get(c)
    if (key !== undefined && this.#byReq.get(key) === c) this.#byReq.delete(key)
    this.#reqKey.delete(c)
    this.#listenerOf.delete(c)
  }
}

/** The connection manager for a context on a softroce device (one per device: it owns QP1). */
export function createCm(ctx: Context, options: CmOptions = {}): ConnectionManager {
  return new ConnectionManager(ctx, options)
}
