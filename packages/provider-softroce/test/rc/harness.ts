/** Test harness: two softroce contexts on 127.0.0.1 (ephemeral ports) and hand-connected QP pairs. */
import { createContext, type AccessName, type Context, type MemoryRegion, type PathMtu, type QpCaps, type QueuePair } from '@rdma-session/core'
import { softroce, type SoftRoceDevice, type SoftRoceOptions } from '../../src/index.js'
import { pattern as conformancePattern } from '@rdma-session/conformance'

export const ALL_ACCESS: readonly AccessName[] = ['local-write', 'remote-read', 'remote-write', 'remote-atomic']
export const ALL_ACCESS_BITS = 15

/** Fast timers for tests: ACK timeout 20–40 ms, RNR waits at most 5 ms. */
export const TEST_TIMERS = { ackTimeoutMinMs: 20, ackTimeoutMaxMs: 40, rnrDelayMaxMs: 5 }

export interface Pair {
  readonly a: Context
  readonly b: Context
  readonly da: SoftRoceDevice
  readonly db: SoftRoceDevice
  close(): Promise<void>
}

export async function openPair(options: SoftRoceOptions = {}, optionsB: SoftRoceOptions = options): Promise<Pair> {
  const a = await createContext({ provider: softroce({ port: 0, timers: TEST_TIMERS, ...options }) })
  const b = await createContext({ provider: softroce({ port: 0, timers: TEST_TIMERS, ...optionsB }) })
  return {
    a,
    b,
    da: a.device as SoftRoceDevice,
    db: b.device as SoftRoceDevice,
    close: async () => {
      await Promise.all([a.close(), b.close()])
    },
  }
}

export interface ConnectOptions {
  readonly mtu?: PathMtu
  readonly caps?: Partial<QpCaps>
  readonly timeout?: number
  readonly retryCnt?: number
  readonly rnrRetry?: number
  readonly minRnrTimer?: number
  readonly psnA?: number
  readonly psnB?: number
  /** A's max_rd_atomic (RTS) and B's max_dest_rd_atomic (RTR); 16 by default. */
  readonly maxRdAtomicA?: number
  readonly maxDestRdAtomicB?: number
  readonly qos?: { weight?: number; rateLimit?: string | number; class?: string }
  readonly qosB?: { weight?: number; rateLimit?: string | number; class?: string }
  readonly encryption?: { keyAB: Uint8Array; keyBA: Uint8Array; epoch?: number }
  /** Bind each QP to its peer's address only (as toward kernel rxe or a NIC), not address and source port: forged packets from another local port then reach the QPs. */
  readonly addressOnly?: boolean
  /** With addressOnly: keep the transport extensions the peer announced (a softroce peer bound by address only). */
  readonly keepExtensions?: boolean
}

/** Connects a new QP on each context to the other: RESET -> INIT -> RTR -> RTS. */
export function connect(p: Pair, o: ConnectOptions = {}): { qa: QueuePair; qb: QueuePair } {
  const qa = p.a.createQp({ caps: o.caps ?? {}, ...(o.qos ? { qos: o.qos as never } : {}) })
  const qb = p.b.createQp({ caps: o.caps ?? {}, ...(o.qosB ? { qos: o.qosB as never } : {}) })
  const mtu = o.mtu ?? 1024
  const psnA = o.psnA ?? qa.localPsn
  const psnB = o.psnB ?? qb.localPsn
  for (const q of [qa, qb]) q.modify({ state: 'INIT', accessFlags: ALL_ACCESS_BITS, portNum: 1, pkeyIndex: 0 })
  const enc = o.encryption
  const remoteOf = (e: { address: string; port: number; extensions?: readonly string[] }) =>
    o.addressOnly ? { address: e.address, port: e.port, ...(o.keepExtensions === true && e.extensions !== undefined ? { extensions: e.extensions } : {}) } : e
  qa.modify({
    state: 'RTR', remote: remoteOf(p.b.endpoint), pathMtu: mtu, destQpn: qb.qpn, rqPsn: psnB, maxDestRdAtomic: 16, minRnrTimer: o.minRnrTimer ?? 1,
    ...(enc ? { encryption: { suite: 'aes-256-gcm', txKey: enc.keyAB, rxKey: enc.keyBA, epoch: enc.epoch ?? 0 } } : {}),
  })
  qb.modify({
    state: 'RTR', remote: remoteOf(p.a.endpoint), pathMtu: mtu, destQpn: qa.qpn, rqPsn: psnA, maxDestRdAtomic: o.maxDestRdAtomicB ?? 16, minRnrTimer: o.minRnrTimer ?? 1,
    ...(enc ? { encryption: { suite: 'aes-256-gcm', txKey: enc.keyBA, rxKey: enc.keyAB, epoch: enc.epoch ?? 0 } } : {}),
  })
  const rts = { timeout: o.timeout ?? 14, retryCnt: o.retryCnt ?? 7, rnrRetry: o.rnrRetry ?? 7, maxRdAtomic: 16 }
  qa.modify({ state: 'RTS', sqPsn: psnA, ...rts, maxRdAtomic: o.maxRdAtomicA ?? 16 })
  qb.modify({ state: 'RTS', sqPsn: psnB, ...rts })
  qa.remoteQpn = qb.qpn
  qb.remoteQpn = qa.qpn
  return { qa, qb }
}

export function register(ctx: Context, size: number, access: readonly AccessName[] = ALL_ACCESS): MemoryRegion {
  return ctx.registerMemory(Buffer.alloc(size), { access })
}

/** Deterministic bytes (the conformance suite's pattern), as a Buffer. */
export function pattern(size: number, seed: number): Buffer {
  const bytes = conformancePattern(size, seed)
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export async function statusOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'SUCCESS'
  } catch (err) {
    const e = err as { status?: string; code?: string; message?: string }
    return e.status ?? e.code ?? String(e.message)
  }
}

/** Polls `cq` until `n` completions arrived (or fails after `timeoutMs`). */
export async function takeCompletions(cq: import('@rdma-session/core').CompletionQueue, n: number, timeoutMs = 5000): Promise<import('@rdma-session/core').WorkCompletion[]> {
  const out: import('@rdma-session/core').WorkCompletion[] = []
  const deadline = performance.now() + timeoutMs
  while (out.length < n) {
    out.push(...cq.poll(n - out.length))
    if (out.length >= n) break
    if (performance.now() > deadline) throw new Error(`expected ${n} completions, got ${out.length}: ${JSON.stringify(out.map((w) => [w.wrId, w.status]))}`)
    await Promise.race([cq.waitReady(), sleep(20)])
  }
  return out
}
