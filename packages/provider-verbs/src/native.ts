/**
 * The native binding: its shape, and the lazy loader that turns every way loading can fail
 * into one AddonMissingError listing what to do. Nothing is loaded until first use.
 */
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { AddonMissingError, SOFTROCE_HINT, VerbsError } from './errors.js'

export interface NativeDeviceEntry {
  readonly name: string
  readonly guid: bigint
  readonly nodeType: string
}

export interface NativeDeviceAttrs {
  readonly name: string
  readonly fwVer: string
  readonly nodeGuid: bigint
  readonly vendorId: number
  readonly vendorPartId: number
  readonly maxMrSize: number
  readonly maxQp: number
  readonly maxQpWr: number
  readonly maxSge: number
  readonly maxCq: number
  readonly maxCqe: number
  readonly maxMr: number
  readonly maxPd: number
  readonly maxQpRdAtom: number
  readonly maxQpInitRdAtom: number
  readonly maxSrq: number
  readonly maxSrqWr: number
  readonly maxSrqSge: number
  readonly maxPkeys: number
  readonly atomicCap: 'none' | 'hca' | 'global' | 'unknown'
  readonly physPortCnt: number
}

export interface NativePortAttrs {
  readonly port: number
  readonly state: string
  readonly stateCode: number
  readonly maxMtu: number
  readonly activeMtu: number
  readonly gidTblLen: number
  readonly pkeyTblLen: number
  readonly linkLayer: 'infiniband' | 'ethernet' | 'unspecified'
  readonly maxMsgSz: number
}

export interface NativeGidEntry {
  readonly index: number
  readonly port: number
  readonly gid: Uint8Array
  readonly type: 'ib' | 'roce-v1' | 'roce-v2' | 'unknown'
  readonly ifindex: number
}

export interface NativeDevice {
  close(): void
  query(): NativeDeviceAttrs
  queryPort(port: number): NativePortAttrs
  gidTable(): NativeGidEntry[]
  watch(onEvent: (name: string, qpKind: 'fatal' | 'path-migrated' | 'last-wqe-reached' | null, qpId: number, port: number) => void): void
  stats(): { qps: number; cqs: number; mrs: number; pds: number; srqs: number }
}

export interface NativePd {
  dealloc(): void
}

export interface NativeMr {
  readonly lkey: number
  readonly rkey: number
  readonly addr: number
  readonly length: number
  dereg(): void
}

export interface NativeCq {
  readonly depth: number
  poll(max: number): number
  setNotify(fn: () => void): void
  destroy(): void
}

export interface NativeSrq {
  readonly maxWr: number
  readonly maxSge: number
  postRecv(): void
  destroy(): void
}

export interface NativeQpCaps {
  readonly maxSendWr: number
  readonly maxRecvWr: number
  readonly maxSendSge: number
  readonly maxRecvSge: number
  readonly maxInlineData: number
}

export interface NativeAh {
  readonly dgid: Uint8Array
  readonly sgidIndex: number
  readonly hopLimit: number
  readonly trafficClass: number
  readonly flowLabel: number
  readonly sl: number
  readonly portNum?: number
}

/** ibv_qp_attr fields by their verbs meaning; pathMtu and qpState are the IBV_* enum values. */
export interface NativeModifyAttrs {
  qpState?: number
  accessFlags?: number
  pkeyIndex?: number
  portNum?: number
  pathMtu?: number
  destQpn?: number
  rqPsn?: number
  maxDestRdAtomic?: number
  minRnrTimer?: number
  sqPsn?: number
  timeout?: number
  retryCnt?: number
  rnrRetry?: number
  maxRdAtomic?: number
  ah?: NativeAh
}

export interface NativeQueryAttrs extends Required<Omit<NativeModifyAttrs, 'ah'>> {
  readonly ah: NativeAh
  readonly caps: NativeQpCaps
}

export interface NativeQp {
  readonly qpn: number
  readonly id: number
  readonly caps: NativeQpCaps
  modify(attrs: NativeModifyAttrs): void
  query(): NativeQueryAttrs
  /** Returns 0 or the errno of ibv_post_send. */
  postSend(inline?: Uint8Array): number
  /** Returns 0 or the errno of ibv_post_recv. */
  postRecv(): number
  /** Encodes the send WR in the descriptor (and `inline`, kept referenced) once; returns a handle for postPrepared. */
  prepareSend(inline?: Uint8Array): number
  destroy(): void
}

/** postPrepared's results besides 0 and errno values (native/verbs.h). */
export const PREPARED_BAD_HANDLE = -1
export const PREPARED_INLINE_DETACHED = -2
export const PREPARED_MIXED_QPS = -3

export interface NativeBinding {
  Device: new (name: string) => NativeDevice
  Pd: new (device: NativeDevice) => NativePd
  Mr: new (pd: NativePd, memory: Uint8Array, access: number) => NativeMr
  Cq: new (device: NativeDevice, depth: number, eventMode: boolean) => NativeCq
  Srq: new (pd: NativePd, maxWr: number, maxSge: number) => NativeSrq
  Qp: new (pd: NativePd, sendCq: NativeCq, recvCq: NativeCq, caps: NativeQpCaps, srq?: NativeSrq) => NativeQp
  listDevices(): NativeDeviceEntry[]
  /** Posts a prepared send WR: 0, the errno of ibv_post_send, or a PREPARED_* code. */
  postPrepared(handle: number): number
  /** Posts handles[0..count) (one QP) chained: 0, or [code, how many were posted, the entry at fault]. */
  postPreparedList(handles: Float64Array, count: number): 0 | [number, number, number]
  /** Frees a prepared WR; true if the handle was live. */
  releasePrepared(handle: number): boolean
  setBuffers(descriptor: ArrayBuffer, records: ArrayBuffer, errorFactory: (verb: string, errno: number, errnoName: string, message: string) => Error): void
  /** Opens libibverbs (dlopen) on first call and says whether it could; absent in addons that link it. */
  libibverbs?(): LibibverbsStatus
  readonly layout: { readonly descriptorBytes: number; readonly maxSge: number; readonly recordWords: number; readonly maxRecords: number }
}

/** Where the binding comes from: the package's own build (default), a .node path, or a function (tests). */
export type AddonSource = string | (() => unknown)

/** Where a loaded .node file came from: a binary shipped in prebuilds/, a node-gyp build in build/, or a path the app gave. */
export type AddonOrigin = 'prebuilt' | 'built-from-source' | 'custom'

/** What the binding's libibverbs() reports: libibverbs is opened with dlopen on first use, not linked. */
export interface LibibverbsStatus {
  readonly loaded: boolean
  /** The file dlopen was given: libibverbs.so.1, or RDMA_SESSION_LIBIBVERBS. */
  readonly file: string
  readonly error?: string
}

const BUILD_HELP = 'build the addon: apt-get install -y libibverbs-dev librdmacm-dev python3 make g++, then `pnpm --filter @rdma-session/provider-verbs build:addon` (or `npm rebuild @rdma-session/provider-verbs`)'
const LIBIBVERBS_HELP = 'install it: apt-get install -y libibverbs1 ibverbs-providers rdma-core'

function packageRoot(): string {
  return fileURLToPath(new URL('..', import.meta.url))
}

/** The prebuilt binary (prebuilds/) or the local build (build/Release) node-gyp-build picks for this platform. */
export function resolveAddonPath(root: string = packageRoot()): string {
  const load = createRequire(import.meta.url)('node-gyp-build') as { resolve(dir: string): string }
  return load.resolve(root)
}

/** prebuilt | built-from-source, from where the file lies in the package. */
export function originOf(path: string): AddonOrigin {
  return /[\\/]prebuilds[\\/]/.test(path) ? 'prebuilt' : 'built-from-source'
}

/** Maps a failure to load the addon to the error that says what to do. */
export function classifyLoadError(err: unknown, platform: string = process.platform): AddonMissingError {
  if (platform !== 'linux') {
    return new AddonMissingError('platform', `libibverbs is Linux-only; this is ${platform}`, [SOFTROCE_HINT], err)
  }
  const message = err instanceof Error ? err.message : String(err)
  if (/libibverbs\.so[.\d]*: cannot open shared object file/.test(message) || /libibverbs/.test(message)) {
    return new AddonMissingError('libibverbs-missing', 'libibverbs (rdma-core) is not installed, so the native addon cannot load', [LIBIBVERBS_HELP, SOFTROCE_HINT], err)
  }
  if (/No native build was found|Cannot find module|MODULE_NOT_FOUND|ENOENT/.test(message)) {
    return new AddonMissingError('not-built', 'the native addon is missing: no prebuilt binary for this platform and no local build', [BUILD_HELP, SOFTROCE_HINT], err)
  }
  return new AddonMissingError('load-failed', `the native addon failed to load: ${message.split('\n')[0]}`, [
    `rebuild it for this Node.js (${process.version}): ${BUILD_HELP}`,
    SOFTROCE_HINT,
  ], err)
}

/** The raw module and where it came from; throws what require or node-gyp-build threw. */
export function requireAddon(source: AddonSource | undefined): { raw: unknown; path?: string; origin: AddonOrigin } {
  if (typeof source === 'function') return { raw: source(), origin: 'custom' }
  const require = createRequire(import.meta.url)
  if (typeof source === 'string') return { raw: require(source), path: source, origin: 'custom' }
  const path = resolveAddonPath()
  return { raw: require(path), path, origin: originOf(path) }
}

export function checkBinding(b: unknown): NativeBinding {
  const x = b as Partial<NativeBinding> | null
  if (x === null || typeof x !== 'object' || typeof x.listDevices !== 'function' || typeof x.Device !== 'function' || typeof x.setBuffers !== 'function') {
    throw new AddonMissingError('load-failed', 'the loaded native addon is not rdma_verbs (listDevices/Device/setBuffers missing)', [BUILD_HELP, SOFTROCE_HINT])
  }
  return x as NativeBinding
}

/** libibverbs as the addon sees it; an addon without libibverbs() linked it at build time, so it is loaded. */
export function libibverbsOf(binding: NativeBinding): LibibverbsStatus {
  return binding.libibverbs?.() ?? { loaded: true, file: 'libibverbs.so.1 (linked)' }
}

/** The addon loaded, and libibverbs did not: the error the first use throws. */
function libibverbsMissing(status: LibibverbsStatus): AddonMissingError {
  return new AddonMissingError('libibverbs-missing', `the native addon loaded, but libibverbs (rdma-core) did not: ${status.error ?? status.file}`, [LIBIBVERBS_HELP, SOFTROCE_HINT])
}

const loaded = new Map<AddonSource | undefined, NativeBinding>()

/** Loads (once per source) and initializes the binding; throws AddonMissingError with what to do. */
export function loadBinding(source?: AddonSource): NativeBinding {
  const cached = loaded.get(source)
  if (cached !== undefined) return cached
  if (process.platform !== 'linux' && source === undefined) throw classifyLoadError(new Error('not linux'))
  let raw: unknown
  try {
    raw = requireAddon(source).raw
  } catch (err) {
    throw classifyLoadError(err)
  }
  const binding = checkBinding(raw)
  const lib = libibverbsOf(binding)
  if (!lib.loaded) throw libibverbsMissing(lib)
  if (typeof binding.setBuffers === 'function' && binding.layout !== undefined) {
    const buffers = WorkBuffers.create(binding)
    binding.setBuffers(buffers.descriptor, buffers.records, (verb, errno, errnoName, message) => new VerbsError(verb, errno, errnoName, message))
    bufferTable.set(binding, buffers)
  }
  loaded.set(source, binding)
  return binding
}

/** The shared descriptor JS fills for each post, and the completion records poll() fills (see native/verbs.h). */
export class WorkBuffers {
  readonly descriptor: ArrayBuffer
  readonly records: ArrayBuffer
  readonly f64: Float64Array
  readonly u32: Uint32Array
  readonly u64: BigUint64Array
  readonly wc: Uint32Array
  readonly maxSge: number
  readonly recordWords: number
  readonly maxRecords: number

  private constructor(layout: NativeBinding['layout']) {
    this.descriptor = new ArrayBuffer(layout.descriptorBytes)
    this.records = new ArrayBuffer(layout.maxRecords * layout.recordWords * 4)
    this.f64 = new Float64Array(this.descriptor)
    this.u32 = new Uint32Array(this.descriptor)
    this.u64 = new BigUint64Array(this.descriptor)
    this.wc = new Uint32Array(this.records)
    this.maxSge = layout.maxSge
    this.recordWords = layout.recordWords
    this.maxRecords = layout.maxRecords
  }

  static create(binding: NativeBinding): WorkBuffers {
    return new WorkBuffers(binding.layout)
  }
}

const bufferTable = new WeakMap<NativeBinding, WorkBuffers>()

export function buffersOf(binding: NativeBinding): WorkBuffers {
  const b = bufferTable.get(binding)
  if (b === undefined) throw new Error('provider-verbs: binding not initialized')
  return b
}
