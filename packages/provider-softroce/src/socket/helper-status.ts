/**
 * nativeHelperStatus(): what `rdma-session doctor` reports about the socket helper without opening
 * a socket: whether it loads, from where (a prebuilt binary or a build from source), and if not, why.
 */
import { crc32Engine } from '../wire/crc32-engine.js'
import { batchOf, loadSockoptAddon, nativeReceiveOf, nativeSendOf, receiveRunOf, type AddonOrigin } from './sockopt-addon.js'

export interface NativeHelperStatus {
  readonly helper: 'loaded' | 'missing'
  readonly origin?: AddonOrigin
  readonly path?: string
  /** The helper's native send and receive paths (false: node:dgram is used for that direction). */
  readonly sendPath: boolean
  readonly receivePath: boolean
  /** The helper's batched paths (sendmmsg + UDP GSO, UDP GRO): whether the kernel takes them is known once a socket opens (device diagnostics.batchedIo). */
  readonly batchedIo: boolean
  /** What computes and checks ICRCs: the helper's CRC-32 (carry-less multiplication) or zlib's. */
  readonly icrcEngine: 'native' | 'zlib'
  /** Received packets continuing a WRITE/SEND are checked and placed by the helper in runs (socket/receive-run.ts). */
  readonly receiveRuns: boolean
  /** Why receive runs are not used (RDMA_SESSION_SOFTROCE_RECEIVE_RUNS / RUNS=off, an older helper, no native receive path). */
  readonly receiveRunsWhy?: string
  /** Why the helper (or one of its paths) is not used. */
  readonly why?: string
}

/** Loads the helper the way the provider does; never throws. */
export function nativeHelperStatus(): NativeHelperStatus {
  const state = loadSockoptAddon()
  if (!state.loaded) return { helper: 'missing', ...(state.path !== undefined ? { path: state.path } : {}), sendPath: false, receivePath: false, batchedIo: false, icrcEngine: crc32Engine(), receiveRuns: false, receiveRunsWhy: state.why, why: state.why }
  const send = nativeSendOf(state)
  const receive = nativeReceiveOf(state)
  const batch = batchOf(state.addon)
  const why = !send.ok ? send.why : !receive.ok ? receive.why : !batch.ok ? batch.why : undefined
  const runs = receiveRunOf(state.addon)
  const runsWhy = !receive.ok ? receive.why : !runs.ok ? runs.why : undefined
  return {
    helper: 'loaded', origin: state.origin, path: state.path, sendPath: send.ok, receivePath: receive.ok, batchedIo: receive.ok && batch.ok, icrcEngine: crc32Engine(),
    receiveRuns: runsWhy === undefined, ...(runsWhy !== undefined ? { receiveRunsWhy: runsWhy } : {}), ...(why !== undefined ? { why } : {}),
  }
}
