/** Test harness: two hosts on one fabric with a PD, a CQ, a QP and a memory region each, connected RC. */
import { randomBytes } from 'node:crypto'
import { AccessFlag, type PathMtu, type QpEncryption, type QpQos, type WorkCompletion } from '@rdma-session/core'
import { MockFabric, mock, type MockCq, type MockDevice, type MockFabricOptions, type MockMr, type MockPd, type MockQp } from '../src/index.js'

export const ALL_ACCESS = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC

export const DEFAULT_QOS: QpQos = { serviceLevel: 0, trafficClass: 0, className: 'default', weight: 1, rateLimitBps: 0 }

export interface Endpoint {
  device: MockDevice
  pd: MockPd
  cq: MockCq
  qp: MockQp
  buf: Uint8Array
  mr: MockMr
  /** Initial PSN this QP sends with. */
  psn: number
}

export interface PairOptions {
  fabric?: MockFabric
  fabricOptions?: MockFabricOptions
  mrBytes?: number
  mrAccess?: number
  qpAccess?: number
  cqDepth?: number
  maxSendWr?: number
  maxRecvWr?: number
  maxInlineData?: number
  qos?: Partial<QpQos>
  mtu?: PathMtu
  timeout?: number
  retryCnt?: number
  rnrRetry?: number
  minRnrTimer?: number
  /** Encrypt both directions with fresh keys (or these keys for A; B gets the mirror). */
  encryption?: boolean | { aTx: Uint8Array; aRx: Uint8Array; bTx?: Uint8Array; bRx?: Uint8Array; epoch?: number }
  /** PSNs to start from (defaults random). */
  psnA?: number
  psnB?: number
}

export interface Pair {
  fabric: MockFabric
  a: Endpoint
  b: Endpoint
}

export async function endpoint(fabric: MockFabric, o: PairOptions = {}): Promise<Endpoint> {
  const device = await mock({ fabric }).openDevice()
  const pd = device.allocPd()
  const buf = new Uint8Array(o.mrBytes ?? 65536)
  const mr = pd.registerMemory(buf, o.mrAccess ?? ALL_ACCESS)
  return { ...queuePair(device, pd, o), buf, mr }
}

/** A QP with its own CQ on an existing host and PD. */
export function queuePair(device: MockDevice, pd: MockPd, o: PairOptions = {}): { device: MockDevice; pd: MockPd; cq: MockCq; qp: MockQp; psn: number } {
  const cq = pd.createCq(o.cqDepth ?? 4096)
  const qp = pd.createQp({
    sendCq: cq,
    recvCq: cq,
    maxSendWr: o.maxSendWr ?? 1024,
    maxRecvWr: o.maxRecvWr ?? 1024,
    maxSendSge: 4,
    maxRecvSge: 4,
    maxInlineData: o.maxInlineData ?? 64,
    qos: { ...DEFAULT_QOS, ...o.qos },
  })
  return { device, pd, cq, qp, psn: Math.floor(Math.random() * 0x1000000) }
}

type Connectable = Pick<Endpoint, 'device' | 'qp' | 'psn'>

/** Moves two QPs to RTS against each other. */
export function connect(a: Connectable, b: Connectable, o: PairOptions = {}): void {
  const keys = encryptionKeys(o)
  if (o.psnA !== undefined) a.psn = o.psnA
  if (o.psnB !== undefined) b.psn = o.psnB
  const sides: [Connectable, Connectable, QpEncryption | undefined][] = [
    [a, b, keys?.a],
    [b, a, keys?.b],
  ]
  for (const [self, peer, enc] of sides) {
    self.qp.modify({ state: 'INIT', accessFlags: o.qpAccess ?? ALL_ACCESS, portNum: 1, pkeyIndex: 0 })
    self.qp.modify({
      state: 'RTR',
      remote: { address: peer.device.info.address, port: peer.device.info.port },
      pathMtu: o.mtu ?? 4096,
      destQpn: peer.qp.qpn,
      rqPsn: peer.psn,
      minRnrTimer: o.minRnrTimer ?? 1,
      ...(enc === undefined ? {} : { encryption: enc }),
    })
  }
  for (const [self] of sides) {
    self.qp.modify({ state: 'RTS', sqPsn: self.psn, timeout: o.timeout ?? 8, retryCnt: o.retryCnt ?? 7, rnrRetry: o.rnrRetry ?? 7 })
  }
}

function encryptionKeys(o: PairOptions): { a: QpEncryption; b: QpEncryption } | undefined {
  if (o.encryption === undefined || o.encryption === false) return undefined
  const e = o.encryption === true ? { aTx: randomBytes(32), aRx: randomBytes(32) } : o.encryption
  const epoch = (typeof o.encryption === 'object' ? o.encryption.epoch : undefined) ?? 0
  return {
    a: { suite: 'aes-256-gcm', txKey: e.aTx, rxKey: e.aRx, epoch },
    b: { suite: 'aes-256-gcm', txKey: 'bTx' in e && e.bTx ? e.bTx : e.aRx, rxKey: 'bRx' in e && e.bRx ? e.bRx : e.aTx, epoch },
  }
}

/**
 * For tests that count packets exactly: an ACK timeout of 268 ms (IB 16, cap 300 ms) that no stall of this process
 * reaches. The default (IB 8, about 1 ms) is outlasted between a packet and its ACK on a loaded host, and the
 * spurious retransmission then shows in the counts.
 */
export const SLOW_ACK_TIMEOUT = { timeout: 16, fabricOptions: { maxAckTimeoutMs: 300 } } as const satisfies PairOptions

/** Two connected endpoints on a fresh fabric (or `o.fabric`). */
export async function pair(o: PairOptions = {}): Promise<Pair> {
  const fabric = o.fabric ?? new MockFabric(o.fabricOptions)
  const a = await endpoint(fabric, o)
  const b = await endpoint(fabric, o)
  connect(a, b, o)
  return { fabric, a, b }
}

export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `cq` until `n` completions have arrived; fails after `timeoutMs`. */
export async function completions(cq: MockCq, n: number, timeoutMs = 3000): Promise<WorkCompletion[]> {
  const out: WorkCompletion[] = []
  const deadline = performance.now() + timeoutMs
  while (out.length < n) {
    out.push(...cq.poll(n - out.length))
    if (out.length >= n) break
    if (performance.now() > deadline) throw new Error(`timed out with ${out.length} of ${n} completions: ${JSON.stringify(out)}`)
    await (out.length === 0 ? sleep(0) : tick())
  }
  return out
}

/** Waits until `cond()` holds; after `timeoutMs` fails with `seen()` (what was there instead). */
export async function until(cond: () => boolean, seen: () => unknown, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms; saw ${JSON.stringify(seen(), (_, v) => (typeof v === 'bigint' ? String(v) : v))}`)
    await sleep(1)
  }
}

/** Lets the fabric run for `ms` and returns every completion that arrived (none expected: pass 0 to check silence). */
export async function settle(cq: MockCq, ms = 20): Promise<WorkCompletion[]> {
  await sleep(ms)
  return cq.poll(1 << 20)
}

/** Sge for `length` bytes at `offset` of an endpoint's region. */
export function sge(e: Endpoint, offset: number, length: number): { addr: number; length: number; lkey: number } {
  return { addr: e.mr.addr + offset, length, lkey: e.mr.lkey }
}

/** Puts the QP pair's resources away, children first. */
export async function teardown(...endpoints: Endpoint[]): Promise<void> {
  for (const e of endpoints) {
    e.qp.destroy()
    e.cq.destroy()
    e.mr.deregister()
    e.pd.dealloc()
    await e.device.close()
  }
}
