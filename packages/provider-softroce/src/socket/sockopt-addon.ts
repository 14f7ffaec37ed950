/**
 * Loads the native socket-options helper on first use, from the package root, so the same code
 * works in dist/*.js (ESM), dist/*.cjs and the sources. node-gyp-build picks the file: a local build
 * (native/build/Release/roce_sockopt.node) first, else the prebuilt binary for this platform
 * (native/prebuilds/<platform>-<arch>/*.<libc>.node) that the package ships.
 * RDMA_SESSION_SOFTROCE_NATIVE=off disables it (tests of the fallback);
 * RDMA_SESSION_SOFTROCE_NATIVE_PATH loads a .node file from elsewhere.
 */
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NATIVE_CRC_DISABLE_ENV, useCrc32, type Crc32 } from '../wire/crc32-engine.js'

const PACKAGE_NAME = '@rdma-session/provider-softroce'
/** Where binding.gyp, build/ and prebuilds/ are, relative to the package root. */
export const NATIVE_DIR = 'native'
export const DISABLE_ENV = 'RDMA_SESSION_SOFTROCE_NATIVE'
export const PATH_ENV = 'RDMA_SESSION_SOFTROCE_NATIVE_PATH'
/** RDMA_SESSION_SOFTROCE_NATIVE_SEND=off keeps the socket helper but sends through node:dgram. */
export const SEND_DISABLE_ENV = 'RDMA_SESSION_SOFTROCE_NATIVE_SEND'
export const RECEIVE_DISABLE_ENV = 'RDMA_SESSION_SOFTROCE_NATIVE_RECEIVE'
/** RDMA_SESSION_SOFTROCE_GSO=off: no UDP GSO (batches go out as sendmmsg of single datagrams). */
export const GSO_DISABLE_ENV = 'RDMA_SESSION_SOFTROCE_GSO'
/** RDMA_SESSION_SOFTROCE_GRO=off: no UDP_GRO on the receive side (recvmmsg of single datagrams). */
export const GRO_DISABLE_ENV = 'RDMA_SESSION_SOFTROCE_GRO'
/** RDMA_SESSION_SOFTROCE_BATCH=off: one sendmsg per datagram, as before batching (no sendmmsg, no GSO). */
export const BATCH_DISABLE_ENV = 'RDMA_SESSION_SOFTROCE_BATCH'
/** RDMA_SESSION_SOFTROCE_RUNS=off: no runs framed by the helper (every packet framed in JavaScript). */
export const RUN_DISABLE_ENV = 'RDMA_SESSION_SOFTROCE_RUNS'
/** RDMA_SESSION_SOFTROCE_RECEIVE_RUNS=off (or RUNS=off): every received packet handled in JavaScript, none in receive runs. */
export const RECEIVE_RUN_DISABLE_ENV = 'RDMA_SESSION_SOFTROCE_RECEIVE_RUNS'
export const BUILD_COMMAND = 'pnpm --filter @rdma-session/provider-softroce build:native'

export interface CreateUdpSocketRequest {
  family: 4 | 6
  address: string
  port: number
  reuseAddr?: boolean
  /** A network namespace name (/run/netns/NAME) or path to create the socket in (needs root). */
  netns?: string
}

/** What the kernel reports for a socket's interop options. */
export interface SocketOptionsReport {
  family: 4 | 6 | 0
  /** IPv4: IP_MTU_DISCOVER as a name ('do', 'want', 'probe', ...). */
  pmtudisc?: string
  /** IPv6: UDP_NO_CHECK6_RX. */
  noCheck6Rx?: boolean
  v6only?: boolean
}

/** The functions roce_sockopt.c exports. Errors carry code ('EADDRINUSE', ...), errno and syscall. */
export interface RoceSockoptAddon {
  createUdpSocket(request: CreateUdpSocketRequest): number
  querySocket(fd: number): SocketOptionsReport
  /** A struct sockaddr_in / sockaddr_in6 for sendTo (absent in helpers built before the native send path). */
  makeSockaddr?(family: 4 | 6, address: string, port: number): Buffer
  /**
   * One sendmsg(MSG_DONTWAIT) of the pieces to `sockaddr`, with IP_TOS + IP_TTL (IPv4) or
   * IPV6_TCLASS + IPV6_HOPLIMIT (IPv6) for the values >= 0 (-1: the socket's default).
   * Returns the bytes sent or -errno (EAGAIN, ENOBUFS, ...: the caller falls back to dgram).
   */
  sendTo?(fd: number, data: Uint8Array | readonly Uint8Array[], sockaddr: Buffer, tos: number, hopLimit: number): number
}

/** The helper's CRC-32 (helpers built before it lack these). */
export interface RoceCrcAddon {
  /** zlib.crc32(data, value), by carry-less multiplication where the CPU has it. */
  crc32: Crc32
  /** Whether this CPU has the instructions crc32 needs to beat zlib (PCLMULQDQ). */
  crc32Accelerated: boolean
}

/** The helper's receive path (helpers built before it lack these). */
export interface RoceReceiveAddon {
  /**
   * Watches `fd` on node's event loop and reads it with recvmmsg into `slab` (one datagram per
   * slot of `slotBytes`); `onBatch(count)` then finds datagram i's length, source port, family and
   * address in meta[i*8 ..] (RECEIVE_META); onBatch(-errno) reports a receive error.
   */
  openReceiver(fd: number, slab: Buffer, meta: Int32Array, slotBytes: number, onBatch: (count: number) => void, onWritable: () => void, onClosed: () => void): object
  /** Calls onWritable once the socket takes datagrams again (after a send returned -EAGAIN). */
  armWritable(handle: object): void
  /** Stops watching, closes the fd, then calls onClosed. */
  closeReceiver(handle: object): void
  /** Where the socket is bound (getsockname). */
  socketAddress(fd: number): { address: string; port: number }
  /** With `gro` (8th argument; UDP_GRO set with udpOffload): aggregates are read into 64 KiB slots and split; meta[i*8 + 7] is datagram i's offset in the slab. */
  openReceiver(fd: number, slab: Buffer, meta: Int32Array, slotBytes: number, onBatch: (count: number) => void, onWritable: () => void, onClosed: () => void, gro: boolean): object
  /** SO_RCVBUF and SO_SNDBUF (best effort); returns the receive buffer granted. */
  setBufferSizes(fd: number, bytes: number): number
}

/** The helper's batched paths (helpers built before them lack these). */
export interface RoceBatchAddon {
  /**
   * One sendmmsg of messages first..end-1 to `sockaddr`: message m is counts[m] consecutive
   * pieces from pieceStart on; segs[m] > 0 makes it a UDP GSO message cut into segs[m]-byte
   * datagrams (the last may be shorter). Returns the messages sent, or -errno.
   */
  sendBatch(fd: number, pieces: readonly Uint8Array[], pieceStart: number, counts: Int32Array, segs: Int32Array, first: number, end: number, sockaddr: Buffer, tos: number, hopLimit: number): number
  /** 0 where the kernel takes UDP_SEGMENT (asked) and UDP_GRO (set to `gro`), else its errno. */
  udpOffload(fd: number, gro: boolean): { segment: number; gro: number }
  /** Counters of a receiver: recvmmsg calls that read something, datagrams read, GRO aggregates and their segments. */
  receiverStats(handle: object): { reads: number; datagrams: number; aggregates: number; segments: number }
}

/**
 * The helper's run framing (native/roce_run.c; helpers built before it lack these): `count`
 * packets of `seg` payload bytes each, packet k = `header` (its PSN + k, AckReq from ackReq[k]) |
 * payload[k*seg, (k+1)*seg) | ICRC seeded with `crcStart` (wire/icrc.ts icrcSeed) and, for IPv4,
 * patched for the ID of its place in its GSO message of `segsPerMsg` packets (idBasis: icrc.ts
 * ipv4IdBasis; null for IPv6).
 */
export interface RoceRunAddon {
  /** Writes the packets end to end into `out`; returns the bytes written. */
  frameRun(out: Uint8Array, header: Uint8Array, payload: Uint8Array, seg: number, count: number, ackReq: Uint8Array, crcStart: number, idBasis: Uint32Array | null, segsPerMsg: number): number
  /** One sendmmsg of the packets as GSO messages of segsPerMsg; returns the packets sent (whole messages) or -errno. */
  sendRun(fd: number, header: Uint8Array, payload: Uint8Array, seg: number, count: number, ackReq: Uint8Array, crcStart: number, idBasis: Uint32Array | null, segsPerMsg: number, sockaddr: Buffer, tos: number, hopLimit: number): number
}

/** The run framing of the loaded helper, or null (an older helper). */
export function runOf(addon: object): RoceRunAddon | null {
  const a = addon as Partial<RoceRunAddon>
  return typeof a.frameRun === 'function' && typeof a.sendRun === 'function' ? (a as RoceRunAddon) : null
}

/**
 * The helper's receive runs (native/roce_receive_run.c; helpers built before them lack it):
 * checks and places the packets of meta entries first..end-1 that continue one message (see
 * socket/receive-run.ts); returns how many it consumed. params: Uint32Array(9), seeds:
 * Uint32Array(34), out: Int32Array(8).
 */
export interface RoceReceiveRunAddon {
  receiveRun(slab: Uint8Array, meta: Int32Array, first: number, end: number, params: Uint32Array, seeds: Uint32Array, targets: readonly Uint8Array[], out: Int32Array): number
}

/** The helper's receive runs, or why they are not used. */
export function receiveRunOf(addon: object): { readonly ok: true; readonly addon: RoceReceiveRunAddon } | { readonly ok: false; readonly why: string } {
  for (const env of [RUN_DISABLE_ENV, RECEIVE_RUN_DISABLE_ENV]) {
    if (isOff(env)) return { ok: false, why: `receive runs are disabled by ${env}=${process.env[env] ?? ''}` }
  }
  const a = addon as Partial<RoceReceiveRunAddon>
  if (typeof a.receiveRun !== 'function') return { ok: false, why: `the helper predates receive runs (no receiveRun); rebuild it with \`${BUILD_COMMAND}\`` }
  return { ok: true, addon: a as RoceReceiveRunAddon }
}

/** The batched paths of the loaded helper, or why they are not used. */
export function batchOf(addon: object): { readonly ok: true; readonly addon: RoceBatchAddon } | { readonly ok: false; readonly why: string } {
  if (isOff(BATCH_DISABLE_ENV)) return { ok: false, why: `batched I/O is disabled by ${BATCH_DISABLE_ENV}=${process.env[BATCH_DISABLE_ENV] ?? ''}` }
  const a = addon as Partial<RoceBatchAddon>
  if (typeof a.sendBatch !== 'function' || typeof a.udpOffload !== 'function' || typeof a.receiverStats !== 'function') {
    return { ok: false, why: `the helper predates batched I/O (no sendBatch); rebuild it with \`${BUILD_COMMAND}\`` }
  }
  return { ok: true, addon: a as RoceBatchAddon }
}

/** Whether an environment switch turns a feature off ('0', 'off', 'false', 'no'). */
export function envOff(name: string): boolean {
  return isOff(name)
}

/** Where the loaded helper came from: the prebuilt binary, a build from source, or RDMA_SESSION_SOFTROCE_NATIVE_PATH. */
export type AddonOrigin = 'prebuilt' | 'built-from-source' | 'custom'

export type AddonState =
  | { readonly loaded: true; readonly addon: RoceSockoptAddon; readonly path: string; readonly origin: AddonOrigin }
  | { readonly loaded: false; readonly path?: string; readonly why: string }

let state: AddonState | undefined

/**
 * The directory of this module, in the ESM build, the CJS build and the sources under vitest.
 * It is read from a stack frame rather than import.meta.url, which does not exist in CJS (and
 * makes esbuild warn when building the CJS output); __filename does not exist in ESM.
 */
function moduleDir(): string {
  const saved = { prepare: Error.prepareStackTrace, limit: Error.stackTraceLimit }
  let file: string | null | undefined
  try {
    Error.prepareStackTrace = (_err, frames) => frames
    Error.stackTraceLimit = 1
    const frames = new Error().stack as unknown as NodeJS.CallSite[]
    file = frames[0]?.getFileName()
  } finally {
    Error.prepareStackTrace = saved.prepare
    Error.stackTraceLimit = saved.limit
  }
  if (!file) return process.cwd()
  return dirname(file.startsWith('file:') ? fileURLToPath(file) : file)
}

/** The nearest directory upwards whose package.json is this package's. */
export function findPackageRoot(from = moduleDir()): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const pj = join(dir, 'package.json')
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === PACKAGE_NAME) return dir
      } catch {
        // an unreadable package.json on the way up: keep looking
      }
    }
    if (dirname(dir) === dir) return undefined
  }
}

function isOff(name: string): boolean {
  const v = process.env[name]?.trim().toLowerCase()
  return v === '0' || v === 'off' || v === 'false' || v === 'no'
}

/** The native send path of the loaded helper, or why it is not used. */
export function nativeSendOf(addon: AddonState): { readonly ok: true; readonly addon: Required<RoceSockoptAddon> } | { readonly ok: false; readonly why: string } {
  if (!addon.loaded) return { ok: false, why: `the native helper is not used because ${addon.why}` }
  if (isOff(SEND_DISABLE_ENV)) return { ok: false, why: `it is disabled by ${SEND_DISABLE_ENV}=${process.env[SEND_DISABLE_ENV] ?? ''}` }
  const a = addon.addon
  if (typeof a.sendTo !== 'function' || typeof a.makeSockaddr !== 'function') {
    return { ok: false, why: `${addon.path} predates the native send path (no sendTo); rebuild it with \`${BUILD_COMMAND}\`` }
  }
  return { ok: true, addon: a as Required<RoceSockoptAddon> }
}

/** The native receive path of the loaded helper (with its send path), or why it is not used. */
export function nativeReceiveOf(addon: AddonState): { readonly ok: true; readonly addon: Required<RoceSockoptAddon> & RoceReceiveAddon } | { readonly ok: false; readonly why: string } {
  const send = nativeSendOf(addon)
  if (!send.ok) return send
  if (isOff(RECEIVE_DISABLE_ENV)) return { ok: false, why: `it is disabled by ${RECEIVE_DISABLE_ENV}=${process.env[RECEIVE_DISABLE_ENV] ?? ''}` }
  const a = send.addon as Required<RoceSockoptAddon> & Partial<RoceReceiveAddon>
  if (typeof a.openReceiver !== 'function' || typeof a.closeReceiver !== 'function' || typeof a.socketAddress !== 'function' ||
    typeof a.armWritable !== 'function' || typeof a.setBufferSizes !== 'function') {
    return { ok: false, why: `${(addon as { path: string }).path} predates the native receive path (no openReceiver); rebuild it with \`${BUILD_COMMAND}\`` }
  }
  return { ok: true, addon: a as Required<RoceSockoptAddon> & RoceReceiveAddon }
}

/** Load (once) and return the addon state; never throws. */
export function loadSockoptAddon(): AddonState {
  if (state !== undefined) return state
  state = load()
  // The helper's CRC-32 computes every ICRC from now on, when it is faster than zlib's.
  const a = state.loaded ? (state.addon as Partial<RoceCrcAddon>) : undefined
  useCrc32(a?.crc32Accelerated === true && typeof a.crc32 === 'function' && !isOff(NATIVE_CRC_DISABLE_ENV) ? a.crc32 : undefined)
  return state
}

/** Forget the cached result (tests that change the environment). */
export function resetSockoptAddon(): void {
  state = undefined
}

/** linux-x64-glibc: the platform as prebuilds are named. */
export function platformTag(): string {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
  return `${process.platform}-${process.arch}-${header?.glibcVersionRuntime ? 'glibc' : 'musl'}`
}

/** The helper node-gyp-build picks in `root`/native, or why there is none. */
function locate(root: string): { path: string; origin: AddonOrigin } | { why: string } {
  const dir = join(root, NATIVE_DIR)
  try {
    const gypBuild = createRequire(join(root, 'package.json'))('node-gyp-build') as { resolve(dir: string): string }
    const path = gypBuild.resolve(dir)
    return { path, origin: /[\\/]prebuilds[\\/]/.test(path) ? 'prebuilt' : 'built-from-source' }
  } catch (err) {
    if (/No native build was found/.test((err as Error).message)) {
      return { why: `it is not built and there is no prebuilt binary for ${platformTag()} (${join(dir, 'prebuilds')} has none; ${join(dir, 'build', 'Release')} is empty)` }
    }
    return { why: `node-gyp-build could not look for it in ${dir}: ${(err as Error).message.split('\n')[0]}` }
  }
}

function load(): AddonState {
  if (isOff(DISABLE_ENV)) return { loaded: false, why: `it is disabled by ${DISABLE_ENV}=${process.env[DISABLE_ENV] ?? ''}` }
  if (process.platform !== 'linux') return { loaded: false, why: `its socket options exist only on Linux (this is ${process.platform})` }
  const root = findPackageRoot()
  const custom = process.env[PATH_ENV]
  if (!custom && root === undefined) return { loaded: false, why: `the package root of ${PACKAGE_NAME} was not found from ${moduleDir()}` }
  const found = custom ? { path: custom, origin: 'custom' as const } : locate(root!)
  if ('why' in found) return { loaded: false, why: found.why }
  const { path, origin } = found
  if (!existsSync(path)) return { loaded: false, path, why: `it is not built (${path} is missing)` }
  try {
    const addon = createRequire(join(root ?? dirname(path), 'package.json'))(path) as RoceSockoptAddon
    if (typeof addon.createUdpSocket !== 'function' || typeof addon.querySocket !== 'function') {
      return { loaded: false, path, why: `${path} is not the roce_sockopt addon (no createUdpSocket/querySocket)` }
    }
    return { loaded: true, addon, path, origin }
  } catch (err) {
    return { loaded: false, path, why: `${path} failed to load: ${(err as Error).message}` }
  }
}
