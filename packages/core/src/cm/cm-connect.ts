/**
 * The connecting side of rdma_cm through core: `ctx.connect('rdma-cm://host:port')` opens a session
 * with an rdma-session listener (its first QP opens it; every further QP is a CM connection naming
 * the session and its CM join token); `ctx.connectQp('rdma-cm://host:port')` makes one plain
 * connection, as rping or perftest -R make, to any rdma_cm listener.
 */
import type { PathMtu } from '@rdma-session/provider-interface'
import type { CreateQpOptions } from '../context.js'
import { EncryptionUnsupportedError, ProtocolError } from '../errors.js'
import type { ProviderConnectionManager } from '@rdma-session/provider-interface'
import type { QueuePair } from '../queue-pair.js'
import { normalizeParams, type SessionParams, type SessionParamsSpec } from '../session/params.js'
import type { QpSpec } from '../session/records.js'
import type { Session } from '../session/session.js'
import type { SessionManager } from '../session/session-manager.js'
import { decodeCmPrivateData, encodeCmPrivateData } from './cm-private-data.js'
import { errorFromRefusal } from './cm-refusal.js'
import { CmSessionChannel, type CoreCmConnection } from './cm-session-channel.js'
import { cmUrl, parseCmUrl } from './cm-url.js'

export type CoreConnectionManager = ProviderConnectionManager<QueuePair>

export interface CmSessionOptions {
  /**
   * The session's parameters. Sessions over rdma_cm are plaintext RoCEv2 (the CM exchange carries no
   * keys): give encryption 'none' or 'preferred'; the default (aes-256-gcm, required) is refused
   * with ERR_ENCRYPTION_UNSUPPORTED. encapsulation.mtu is announced in each REQ; dscp/ecn set every QP's traffic class.
   */
  readonly params?: SessionParamsSpec
  /** The first QPs (one CM connection each). Default: one QP. */
  readonly qps?: readonly QpSpec[]
}

export interface CmQpConnectOptions {
  /** REQ private data for the peer application, at most 56 bytes. */
  readonly privateData?: Uint8Array
  /** Options for ctx.createQp. */
  readonly qp?: CreateQpOptions
  /** Path MTU announced in the REQ (default 1024). */
  readonly pathMtu?: PathMtu
  /** Runs on the QP in INIT before the REQ leaves: post receives here. */
  readonly prepare?: (qp: QueuePair) => void
}

/** The parameters of a session over rdma_cm: plaintext, or ERR_ENCRYPTION_UNSUPPORTED. */
export function cmSessionParams(spec: SessionParamsSpec | undefined): SessionParams {
  const params = normalizeParams(spec)
  if (params.encryption.suite !== 'none' && params.encryption.required) throw new EncryptionUnsupportedError('rdma-cm', params.encryption.suite)
  return params.encryption.suite === 'none' ? params : normalizeParams({ ...spec, encryption: 'none' })
}

/** The traffic class (DSCP and ECN) of a session's QPs. */
export function trafficClassOf(params: SessionParams): number {
  return (params.encapsulation.dscp << 2) | params.encapsulation.ecn
}

function qpOptions(spec: QpSpec | undefined, trafficClass: number): CreateQpOptions {
  return { caps: spec?.caps ?? {}, qos: spec?.qos ?? {}, defaultTrafficClass: trafficClass }
}

async function dial(cm: CoreConnectionManager, url: string, host: string, port: number, o: CmQpConnectOptions, sessionId?: string): Promise<CoreCmConnection> {
  try {
    return await cm.connect({ host, port, ...o })
  } catch (err) {
    throw errorFromRefusal(err, url, sessionId)
  }
}

export async function connectCmQp(cm: CoreConnectionManager, url: string, options: CmQpConnectOptions = {}): Promise<CoreCmConnection> {
  const { host, port } = parseCmUrl(url)
  return dial(cm, url, host, port, options)
}

export async function connectCmSession(sessions: SessionManager, cm: CoreConnectionManager, url: string, options: CmSessionOptions = {}): Promise<Session> {
  const { host, port } = parseCmUrl(url)
  const target = cmUrl(host, port)
  const params = cmSessionParams(options.params)
  const specs = options.qps ?? [{}]
  const tc = trafficClassOf(params)
  const mtu = params.encapsulation.mtu
  const first = await dial(cm, target, host, port, { privateData: encodeCmPrivateData({ kind: 'open', trafficClass: tc, mtu }), qp: qpOptions(specs[0], tc), pathMtu: mtu })
  const d = decodeCmPrivateData(first.privateData)
  if (d.plain || !('message' in d) || d.message.kind !== 'accept') {
    await first.disconnect().catch(() => {})
    await first.qp?.close()
    throw new ProtocolError(`${target} accepted the rdma_cm connection but is no rdma-session listener (its REP carries no session); use ctx.connectQp() for plain rdma_cm applications`, { target })
  }
  const { sessionId, token } = d.message
  const join = encodeCmPrivateData({ kind: 'join', sessionId, token })
  const channel = new CmSessionChannel(sessions, (_session, spec) => dial(cm, target, host, port, { privateData: join, qp: qpOptions(spec, tc), pathMtu: mtu }, sessionId))
  let session: Session
  try {
    session = sessions.registerConnected({ id: sessionId, remote: { address: host, port }, params, initiator: true, peer: channel, secret: null, qps: [first.qp!] })
  } catch (err) {
    await first.disconnect().catch(() => {})
    await first.qp?.close()
    throw err
  }
  channel.bind(session)
  channel.track(first, true)
  if (specs.length > 1) {
    try {
      await session.addQps(specs.slice(1))
    } catch (err) {
      await session.close('its first QPs could not all be connected')
      throw err
    }
  }
  return session
}
