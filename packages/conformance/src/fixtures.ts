/** Building blocks the tests share: sessions, hand-built QP pairs, registered memory, and completion helpers. */
import { expect } from 'vitest'
import {
  AccessFlag, isRdmaError,
  type AccessName, type CompletionQueue, type Context, type CreateSessionOptions, type MemoryRegion, type PathMtu,
  type QpCaps, type QueuePair, type Session, type WcStatus, type WorkCompletion,
} from '@rdma-session/core'
import type { ConformanceEnv } from './target.js'
import type { EventEmitter } from 'node:events'

export const ALL_ACCESS: readonly AccessName[] = ['local-write', 'remote-read', 'remote-write', 'remote-atomic']
export const ALL_ACCESS_BITS = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC

// ---- memory

/** Registers a zeroed buffer of `size` bytes. */
export function register(ctx: Context, size: number, access: readonly AccessName[] = ALL_ACCESS): MemoryRegion {
  return ctx.registerMemory(Buffer.alloc(size), { access })
}

/** Deterministic pseudo-random bytes (xorshift32), different for each seed. */
export function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

/** Fills `mr` (or part of it) with `pattern(length, seed)` and returns a copy of what was written. */
export function fill(mr: MemoryRegion, seed: number, offset = 0, length = mr.length - offset): Uint8Array {
  const bytes = pattern(length, seed)
  mr.bytes.set(bytes, offset)
  return bytes
}

/** A copy of a region's bytes. */
export function snapshot(mr: MemoryRegion, offset = 0, length = mr.length - offset): Uint8Array {
  return Uint8Array.from(mr.bytes.subarray(offset, offset + length))
}

/** Byte equality with a short message (vitest's diff of 64 KiB arrays is unreadable). */
export function expectBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length)
  const at = actual.findIndex((v, i) => v !== expected[i])
  expect(at, `${what}: first differing byte (-1 = identical)`).toBe(-1)
}

/** 64-bit atomics operate on host byte order, which is little-endian on every platform Node supports for RDMA. */
export const readU64 = (mr: MemoryRegion, offset: number): bigint => Buffer.from(mr.bytes.buffer, mr.bytes.byteOffset, mr.bytes.byteLength).readBigUInt64LE(offset)
export const writeU64 = (mr: MemoryRegion, offset: number, v: bigint): void => {
  Buffer.from(mr.bytes.buffer, mr.bytes.byteOffset, mr.bytes.byteLength).writeBigUInt64LE(v, offset)
}

// ---- sessions

export interface SessionPair {
  /** The initiator's view (on env.a). */
  readonly session: Session
  /** The peer's view of the same session (on env.b). */
  readonly peer: Session
}

/**
 * Session options as the tests mean them: the default parameters (encrypted) where the provider
 * encrypts; where it cannot, plaintext asked for explicitly (`encryption: 'none'`), as an
 * application toward kernel rxe or a NIC does. A test that sets `encryption` gets what it set.
 */
export function sessionOptions(env: ConformanceEnv, options: Omit<CreateSessionOptions, 'peer'> = {}): CreateSessionOptions {
  if (options.params?.encryption !== undefined || env.a.capabilities.encryption) return { peer: env.b, ...options }
  return { peer: env.b, ...options, params: { ...options.params, encryption: 'none' } }
}

export async function openSession(env: ConformanceEnv, options: Omit<CreateSessionOptions, 'peer'> = {}): Promise<SessionPair> {
  const session = await env.a.sessions.create(sessionOptions(env, options))
  return { session, peer: env.b.sessions.get(session.id) }
}

/** The QP on the peer side connected to `qp`. */
export function peerOf(peer: Session, qp: QueuePair): QueuePair {
  const match = peer.qps.find((q) => q.qpn === qp.remoteQpn)
  if (match === undefined) throw new Error(`the peer session has no QP ${String(qp.remoteQpn)} (the remote end of QP ${qp.qpn})`)
  expect(match.remoteQpn, `peer QP ${match.qpn} points back at QP ${qp.qpn}`).toBe(qp.qpn)
  return match
}

// ---- hand-built QP pairs (raw verbs)

export interface RawPairOptions {
  readonly caps?: Partial<QpCaps>
  /** RTS: RNR retries, 0–7 (7 = infinite). Default 7. */
  readonly rnrRetry?: number
  /** RTS: transport retries, 0–7. Default 7. */
  readonly retryCnt?: number
  /** RTS: local ACK timeout (IB encoding). Default 14. */
  readonly timeout?: number
  /** RTR: minimum RNR NAK timer (IB encoding). Default 1 (0.01 ms). */
  readonly minRnrTimer?: number
}

export interface RawPair {
  readonly a: QueuePair
  readonly b: QueuePair
}

/** The MTU both endpoints support, at most 1024. */
export function commonMtu(env: ConformanceEnv): PathMtu {
  return Math.min(1024, env.a.capabilities.maxMtu, env.b.capabilities.maxMtu) as PathMtu
}

export function toInit(qp: QueuePair): void {
  qp.modify({ state: 'INIT', accessFlags: ALL_ACCESS_BITS, portNum: 1, pkeyIndex: 0 })
}

export function toRtr(qp: QueuePair, remoteCtx: Context, remoteQp: QueuePair, mtu: PathMtu, minRnrTimer = 1): void {
  qp.modify({ state: 'RTR', remote: remoteCtx.endpoint, pathMtu: mtu, destQpn: remoteQp.qpn, rqPsn: remoteQp.localPsn, maxDestRdAtomic: 16, minRnrTimer })
  qp.remoteQpn = remoteQp.qpn
}

export function toRts(qp: QueuePair, options: RawPairOptions = {}): void {
  qp.modify({ state: 'RTS', sqPsn: qp.localPsn, timeout: options.timeout ?? 14, retryCnt: options.retryCnt ?? 7, rnrRetry: options.rnrRetry ?? 7, maxRdAtomic: 16 })
}

/** Connects `a` (on env.a) and `b` (on env.b), both in RESET, to each other by hand: RESET -> INIT -> RTR -> RTS. */
export function connectRaw(env: ConformanceEnv, a: QueuePair, b: QueuePair, options: RawPairOptions = {}): void {
  const mtu = commonMtu(env)
  toInit(a)
  toInit(b)
  toRtr(a, env.b, b, mtu, options.minRnrTimer)
  toRtr(b, env.a, a, mtu, options.minRnrTimer)
  toRts(a, options)
  toRts(b, options)
}

/** Two QPs (a on env.a, b on env.b), each with its own CQ, connected by hand: RESET -> INIT -> RTR -> RTS. */
export function rawPair(env: ConformanceEnv, options: RawPairOptions = {}): RawPair {
  const a = env.a.createQp({ caps: options.caps ?? {} })
  const b = env.b.createQp({ caps: options.caps ?? {} })
  connectRaw(env, a, b, options)
  return { a, b }
}

// ---- outcomes

/** Runs `op` and returns what it threw or rejected with; fails the test if it succeeded. Sync throws count too. */
export async function failureOf(op: () => unknown): Promise<unknown> {
  try {
    await op()
  } catch (err) {
    return err
  }
  throw new Error('expected the operation to fail, but it succeeded')
}

/** Expects `op` to fail with an RdmaError of `code`; returns the error. */
export async function expectCode(op: () => unknown, code: string): Promise<Error & { code: string; details: Record<string, unknown> }> {
  const err = await failureOf(op)
  expect(isRdmaError(err), `an rdma-session error, got: ${String(err)}`).toBe(true)
  expect((err as { code: string }).code, String((err as Error).message)).toBe(code)
  return err as Error & { code: string; details: Record<string, unknown> }
}

/** Expects `op` to reject with ERR_WORK_COMPLETION of `status`. */
export async function expectStatus(op: () => unknown, status: WcStatus): Promise<void> {
  const err = await expectCode(op, 'ERR_WORK_COMPLETION')
  expect((err as unknown as { status: string }).status, err.message).toBe(status)
}

/** Settles every promise and returns each one's status ('SUCCESS' or the WC status / error code it failed with). */
export async function outcomes(promises: readonly Promise<unknown>[]): Promise<string[]> {
  const settled = await Promise.allSettled(promises)
  return settled.map((s) => {
    if (s.status === 'fulfilled') return 'SUCCESS'
    const e = s.reason as { status?: string; code?: string; message?: string }
    return e.status ?? e.code ?? String(e.message)
  })
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `cq` until `n` completions have arrived; fails after `timeoutMs`. */
export async function takeCompletions(cq: CompletionQueue, n: number, timeoutMs = 5000): Promise<WorkCompletion[]> {
  const out: WorkCompletion[] = []
  const deadline = performance.now() + timeoutMs
  while (out.length < n) {
    out.push(...cq.poll(n - out.length))
    if (out.length >= n) break
    const left = deadline - performance.now()
    if (left <= 0) throw new Error(`expected ${n} completions, got ${out.length} within ${timeoutMs} ms: ${JSON.stringify(out.map((w) => [w.wrId, w.opcode, w.status]))}`)
    await Promise.race([cq.waitReady(), sleep(Math.min(left, 50))])
  }
  return out
}

/** Waits `ms` and returns whatever completions arrived (expected: none). */
export async function strayCompletions(cq: CompletionQueue, ms: number): Promise<WorkCompletion[]> {
  await sleep(ms)
  return cq.poll(1000)
}

/** Resolves when `emitter` emits `event`, or rejects after `timeoutMs`. */
export function nextEvent<T = unknown>(emitter: EventEmitter, event: string, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' event within ${timeoutMs} ms`)), timeoutMs)
    emitter.once(event, (v: T) => {
      clearTimeout(timer)
      resolve(v)
    })
  })
}

/** Records the order in which promises settle. */
export function settleOrder(promises: readonly Promise<unknown>[]): Promise<number[]> {
  const order: number[] = []
  return Promise.allSettled(promises.map((p, i) => p.then(() => order.push(i), () => order.push(i)))).then(() => order)
}

export const ZERO_HANDLES = { regions: 0, cqs: 0, qps: 0, sessions: 0 }

/** Waits until `cond()` holds, polling; fails after `timeoutMs` with `describe()` (what was seen). */
export async function until(what: string, cond: () => boolean, describe: () => unknown, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; saw ${JSON.stringify(describe())}`)
    await sleep(10)
  }
}
