/** The three bench suites, each measured against a baseline in the same run: throughput vs size, latency percentiles, QoS isolation. */
import type { Context, PathMtu, QueuePair, Session } from '@rdma-session/core'
import { SpiPath } from './spi-path.js'

export interface ThroughputPoint {
  readonly provider: string
  readonly size: number
  readonly ops: number
  /** Bytes per second through the provider SPI directly (the baseline). */
  readonly baselineBps: number
  /** Bytes per second through core's qp.write (a promise per WR). */
  readonly coreBps: number
  /** core / baseline. */
  readonly ratio: number
}

export interface Percentiles {
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
}

export interface LatencyResult {
  readonly provider: string
  readonly size: number
  readonly samples: number
  readonly baselineMicros: Percentiles
  readonly coreMicros: Percentiles
}

export interface QosResult {
  readonly provider: string
  /** The latency QP's small writes with the link idle (the baseline). */
  readonly idleMicros: Percentiles
  /** The same writes on the latency QP while bulk QPs of the same session flood the link. */
  readonly isolatedMicros: Percentiles
  /** The same writes on a bulk QP during the flood (no isolation), for contrast. */
  readonly sharedMicros: Percentiles
  readonly bulkBitsPerSecond: number
}

export function percentiles(us: readonly number[]): Percentiles {
  const s = [...us].sort((a, b) => a - b)
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? 0
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s.at(-1) ?? 0 }
}

/** Two contexts of one provider, connected by one session with a latency QP. */
export interface BenchPair {
  readonly provider: string
  readonly a: Context
  readonly b: Context
  readonly mtu: PathMtu
}

const REGION = 1 << 20
/** The baseline drives raw QPs in plaintext: the sessions measured against it are plaintext too (asked for, as sessions are encrypted by default). */
const BENCH_ENCRYPTION = 'none'

async function withSession<T>(pair: BenchPair, fn: (s: Session, target: { addr: number; rkey: number; length: number }, a: Context) => Promise<T>): Promise<T> {
  const target = pair.b.registerMemory(new Uint8Array(REGION), { access: ['local-write', 'remote-write', 'remote-read'] })
  const session = await pair.a.sessions.create({ peer: pair.b, params: { encryption: BENCH_ENCRYPTION, encapsulation: { mtu: pair.mtu } }, qps: [{ qos: { class: 'latency' }, caps: { maxSendWr: 64 } }] })
  try {
    return await fn(session, target.region(), pair.a)
  } finally {
    await session.close()
    target.deregister()
  }
}

async function coreWrites(qp: QueuePair, a: Context, region: { addr: number; rkey: number; length: number }, size: number, ops: number, depth: number): Promise<number> {
  const src = a.registerMemory(new Uint8Array(size))
  const slice = src.slice(0, size)
  const target = { ...region, length: size }
  const t0 = performance.now()
  let posted = 0
  const lane = async (): Promise<void> => {
    while (posted < ops) {
      posted++
      await qp.write(slice, target)
    }
  }
  await Promise.all(Array.from({ length: depth }, lane))
  const ms = performance.now() - t0
  src.deregister()
  return ms
}

/** Throughput of `size`-byte RDMA WRITEs, 16 in flight: SPI (baseline) and core, interleaved in 3 rounds (median). */
export async function throughputAt(pair: BenchPair, size: number, budgetBytes: number): Promise<ThroughputPoint> {
  const ops = Math.max(64, Math.min(4000, Math.floor(budgetBytes / size)))
  const spi = new SpiPath(pair.a, pair.b, Math.max(size, 4096), pair.mtu)
  try {
    return await withSession(pair, async (session, region, a) => {
      const qp = session.qps[0]!
      const base: number[] = []
      const core: number[] = []
      await spi.writes(size, Math.min(ops, 64), 16) // warm-up
      await coreWrites(qp, a, region, size, Math.min(ops, 64), 16)
      for (let r = 0; r < 3; r++) {
        base.push(await spi.writes(size, ops, 16))
        core.push(await coreWrites(qp, a, region, size, ops, 16))
      }
      const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[1]!
      const baselineBps = (ops * size) / (med(base) / 1000)
      const coreBps = (ops * size) / (med(core) / 1000)
      return { provider: pair.provider, size, ops, baselineBps, coreBps, ratio: coreBps / baselineBps }
    })
  } finally {
    spi.close()
  }
}

/** One 8-byte write at a time: latency percentiles through the SPI (baseline) and through core. */
export async function latency(pair: BenchPair, samples: number): Promise<LatencyResult> {
  const spi = new SpiPath(pair.a, pair.b, 4096, pair.mtu)
  try {
    return await withSession(pair, async (session, region, a) => {
      const qp = session.qps[0]!
      const src = a.registerMemory(new Uint8Array(8))
      const target = { ...region, length: 8 }
      await spi.pings(8, 20)
      const base: number[] = []
      const core: number[] = []
      // Interleaved in blocks of 10 so machine noise hits both alike.
      for (let i = 0; i < samples; i += 10) {
        base.push(...(await spi.pings(8, 10)))
        for (let j = 0; j < 10; j++) {
          const t0 = performance.now()
          await qp.write(src.slice(0, 8), target)
          core.push((performance.now() - t0) * 1000)
        }
      }
      src.deregister()
      return { provider: pair.provider, size: 8, samples: base.length, baselineMicros: percentiles(base), coreMicros: percentiles(core) }
    })
  } finally {
    spi.close()
  }
}

/** A latency QP and two bulk QPs in one session: small writes idle, during a striped bulk flood, and on a bulk QP during the flood. */
export async function qosIsolation(pair: BenchPair, probes: number): Promise<QosResult> {
  const target = pair.b.registerMemory(new Uint8Array(4 << 20), { access: ['local-write', 'remote-write'] })
  const session = await pair.a.sessions.create({ peer: pair.b, params: { encryption: BENCH_ENCRYPTION, encapsulation: { mtu: pair.mtu } }, qps: [{ qos: { class: 'latency', serviceLevel: 3, weight: 1 } }] })
  try {
    const [bulk] = await session.addQps([{ qos: { class: 'bulk', weight: 4 } }, { qos: { class: 'bulk', weight: 4 } }])
    const lat = session.qpsOfClass('latency')[0]!
    const region = target.region()
    const local = pair.a.registerMemory(new Uint8Array(4 << 20))
    const probeTarget = { ...region, addr: region.addr + region.length - 64, length: 64 }
    const probe = async (qp: QueuePair): Promise<number[]> => {
      const us: number[] = []
      for (let i = 0; i < probes; i++) {
        const t0 = performance.now()
        await qp.write(local.slice(region.length - 64, 64), probeTarget)
        us.push((performance.now() - t0) * 1000)
      }
      return us
    }
    const flood = (): (() => Promise<{ bytes: number; seconds: number }>) => {
      let running = true
      let bytes = 0
      const t0 = performance.now()
      const done = (async () => {
        while (running) bytes += (await session.write(local.slice(0, region.length - 65536), region, { class: 'bulk', chunkSize: 65536 })).bytes
      })()
      return async () => {
        running = false
        await done
        return { bytes, seconds: (performance.now() - t0) / 1000 }
      }
    }
    const idle = await probe(lat)
    let stop = flood()
    await new Promise((r) => setTimeout(r, 30))
    const isolated = await probe(lat)
    const moved = await stop()
    stop = flood()
    await new Promise((r) => setTimeout(r, 30))
    const shared = await probe(bulk!)
    await stop()
    local.deregister()
    return { provider: pair.provider, idleMicros: percentiles(idle), isolatedMicros: percentiles(isolated), sharedMicros: percentiles(shared), bulkBitsPerSecond: (moved.bytes * 8) / moved.seconds }
  } finally {
    await session.close()
    target.deregister()
  }
}
