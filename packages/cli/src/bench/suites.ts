/**
 * The three bench suites, each measured against a baseline in the same run: throughput vs size,
 * latency percentiles, QoS isolation. Every suite alternates its variants round by round (AB, BA,
 * AB, …) so drift of the machine's speed hits both alike, and reports the median over rounds with
 * the spread (quartiles and extremes) so two runs can be compared.
 */
import type { Context, PathMtu, QueuePair, Session } from '@rdma-session/core'
import { SpiPath } from './spi-path.js'

/** Median, quartiles and extremes of the per-round values. */
export interface Summary {
  readonly median: number
  readonly q1: number
  readonly q3: number
  readonly min: number
  readonly max: number
}

export interface ThroughputPoint {
  readonly provider: string
  readonly size: number
  /** Writes per round and variant (chosen so a round lasts about the round time). */
  readonly ops: number
  readonly rounds: number
  /** Bytes per second through the provider SPI directly (the baseline), over rounds. */
  readonly baselineBps: Summary
  /** Bytes per second through core's qp.write (a promise per WR), over rounds. */
  readonly coreBps: Summary
  /** core / baseline of each round (the two ran back to back), over rounds. */
  readonly ratio: Summary
  /**
   * The same ratio from CPU time instead of wall time (bytes per CPU-second of this process, user +
   * system): what core costs over the SPI. It stays put when other processes take the CPU, which
   * stretches wall time at random; use it to compare runs on a busy machine.
   */
  readonly cpuRatio: Summary
}

export interface Percentiles {
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
}

/** Percentiles of all samples, and the spread of each round's p50 and p99. */
export interface LatencyStats extends Percentiles {
  readonly roundP50: Summary
  readonly roundP99: Summary
}

export interface LatencyResult {
  readonly provider: string
  readonly size: number
  /** Samples per variant (all rounds). */
  readonly samples: number
  readonly rounds: number
  readonly baselineMicros: LatencyStats
  readonly coreMicros: LatencyStats
}

export interface QosResult {
  readonly provider: string
  readonly rounds: number
  /** The latency QP's small writes with the link idle (the baseline). */
  readonly idleMicros: LatencyStats
  /** The same writes on the latency QP while bulk QPs of the same session flood the link. */
  readonly isolatedMicros: LatencyStats
  /** The same writes on a bulk QP during the flood (no isolation), for contrast. */
  readonly sharedMicros: LatencyStats
  readonly bulkBitsPerSecond: number
}

/** How long and how often each suite measures. */
export interface BenchPlan {
  /** Rounds per throughput point; each round runs both variants. */
  readonly rounds: number
  /** Target length of one variant's run in a round, in ms. */
  readonly roundMs: number
  /** Latency samples per variant and round. */
  readonly latencyPerRound: number
  /** QoS rounds and probes per kind and round. */
  readonly qosRounds: number
  readonly probesPerRound: number
}

/** Nearest-rank quantile of sorted values. */
function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0
}

export function summarize(xs: readonly number[]): Summary {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length % 2 === 1 ? s[(s.length - 1) / 2]! : s.length === 0 ? 0 : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
  return { median: mid, q1: quantile(s, 0.25), q3: quantile(s, 0.75), min: s[0] ?? 0, max: s.at(-1) ?? 0 }
}

function latencyStats(rounds: readonly number[][]): LatencyStats {
  return { ...percentiles(rounds.flat()), roundP50: summarize(rounds.map((r) => percentiles(r).p50)), roundP99: summarize(rounds.map((r) => percentiles(r).p99)) }
}

/** Adds the wall time (ms, as `run` measures it) and this process's CPU time (µs) of `run` to `into`. */
async function timed(into: { ms: number; cpu: number }, run: () => Promise<number>): Promise<void> {
  const before = process.cpuUsage()
  into.ms += await run()
  const used = process.cpuUsage(before)
  into.cpu += used.user + used.system
}

/** Blocks per variant in one throughput round. */
const BLOCKS = 8

/** Runs `a` and `b` once each, in the order of round `r` (even: a first, odd: b first). */
async function alternate<T>(r: number, a: () => Promise<T>, b: () => Promise<T>): Promise<[T, T]> {
  if (r % 2 === 0) {
    const x = await a()
    return [x, await b()]
  }
  const y = await b()
  return [await a(), y]
}

export function percentiles(us: readonly number[]): Percentiles {
  const s = [...us].sort((a, b) => a - b)
  return { p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s.at(-1) ?? 0 }
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

/**
 * Throughput of `size`-byte RDMA WRITEs, 16 in flight: SPI (baseline) and core, alternating in
 * `plan.rounds` rounds; each variant's run in a round lasts about `plan.roundMs`.
 */
export async function throughputAt(pair: BenchPair, size: number, plan: BenchPlan): Promise<ThroughputPoint> {
  const spi = new SpiPath(pair.a, pair.b, Math.max(size, 4096), pair.mtu)
  try {
    return await withSession(pair, async (session, region, a) => {
      const qp = session.qps[0]!
      // Warm-up (JIT, buffers), then size a block from the baseline's rate: double until one takes >= 10 ms.
      await spi.writes(size, 64, 16)
      await coreWrites(qp, a, region, size, 64, 16)
      let probeOps = 64
      let probeMs = await spi.writes(size, probeOps, 16)
      while (probeMs < 10 && probeOps < 100_000) {
        probeOps *= 2
        probeMs = await spi.writes(size, probeOps, 16)
      }
      // A round is BLOCKS short blocks per variant, interleaved (ABAB… or BABA…): a stall of the
      // machine hits one block of one variant, not a whole round.
      const blockOps = Math.max(32, Math.round((probeOps * plan.roundMs) / BLOCKS / Math.max(0.05, probeMs)))
      const ops = blockOps * BLOCKS
      const base: number[] = []
      const core: number[] = []
      const ratio: number[] = []
      const cpuRatio: number[] = []
      for (let r = 0; r < plan.rounds; r++) {
        const spiTime = { ms: 0, cpu: 0 }
        const coreTime = { ms: 0, cpu: 0 }
        for (let k = 0; k < BLOCKS; k++) {
          await alternate(r + k, () => timed(spiTime, () => spi.writes(size, blockOps, 16)), () => timed(coreTime, () => coreWrites(qp, a, region, size, blockOps, 16)))
        }
        const b = (ops * size) / (spiTime.ms / 1000)
        const c = (ops * size) / (coreTime.ms / 1000)
        base.push(b)
        core.push(c)
        ratio.push(c / b)
        cpuRatio.push(spiTime.cpu / Math.max(1, coreTime.cpu))
      }
      return { provider: pair.provider, size, ops, rounds: plan.rounds, baselineBps: summarize(base), coreBps: summarize(core), ratio: summarize(ratio), cpuRatio: summarize(cpuRatio) }
    })
  } finally {
    spi.close()
  }
}

/** One 8-byte write at a time: latency percentiles through the SPI (baseline) and through core, alternating per round. */
export async function latency(pair: BenchPair, plan: BenchPlan): Promise<LatencyResult> {
  const spi = new SpiPath(pair.a, pair.b, 4096, pair.mtu)
  try {
    return await withSession(pair, async (session, region, a) => {
      const qp = session.qps[0]!
      const src = a.registerMemory(new Uint8Array(8))
      const target = { ...region, length: 8 }
      const coreRound = async (): Promise<number[]> => {
        const us: number[] = []
        for (let j = 0; j < plan.latencyPerRound; j++) {
          const t0 = performance.now()
          await qp.write(src.slice(0, 8), target)
          us.push((performance.now() - t0) * 1000)
        }
        return us
      }
      await spi.pings(8, 20)
      await coreRound()
      const base: number[][] = []
      const core: number[][] = []
      for (let r = 0; r < plan.rounds; r++) {
        const [b, c] = await alternate(r, () => spi.pings(8, plan.latencyPerRound), coreRound)
        base.push(b)
        core.push(c)
      }
      src.deregister()
      return { provider: pair.provider, size: 8, samples: plan.rounds * plan.latencyPerRound, rounds: plan.rounds, baselineMicros: latencyStats(base), coreMicros: latencyStats(core) }
    })
  } finally {
    spi.close()
  }
}

/**
 * A latency QP and two bulk QPs in one session: small writes with the link idle, on the latency QP
 * during a striped bulk flood, and on a bulk QP during the flood; `plan.qosRounds` rounds, the two
 * flood measurements alternating their order.
 */
export async function qosIsolation(pair: BenchPair, plan: BenchPlan): Promise<QosResult> {
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
      for (let i = 0; i < plan.probesPerRound; i++) {
        const t0 = performance.now()
        await qp.write(local.slice(region.length - 64, 64), probeTarget)
        us.push((performance.now() - t0) * 1000)
      }
      return us
    }
    let bytes = 0
    let seconds = 0
    const underFlood = async (qp: QueuePair): Promise<number[]> => {
      let running = true
      let moved = 0
      const t0 = performance.now()
      const done = (async () => {
        while (running) moved += (await session.write(local.slice(0, region.length - 65536), region, { class: 'bulk', chunkSize: 65536 })).bytes
      })()
      // Let the flood fill the queues before probing.
      await new Promise((r) => setTimeout(r, 30))
      const us = await probe(qp)
      running = false
      await done
      if (qp === lat) {
        bytes += moved
        seconds += (performance.now() - t0) / 1000
      }
      return us
    }
    const idle: number[][] = []
    const isolated: number[][] = []
    const shared: number[][] = []
    for (let r = 0; r < plan.qosRounds; r++) {
      idle.push(await probe(lat))
      const [i, s] = await alternate(r, () => underFlood(lat), () => underFlood(bulk!))
      isolated.push(i)
      shared.push(s)
    }
    local.deregister()
    return { provider: pair.provider, rounds: plan.qosRounds, idleMicros: latencyStats(idle), isolatedMicros: latencyStats(isolated), sharedMicros: latencyStats(shared), bulkBitsPerSecond: seconds > 0 ? (bytes * 8) / seconds : 0 }
  } finally {
    await session.close()
    target.deregister()
  }
}
