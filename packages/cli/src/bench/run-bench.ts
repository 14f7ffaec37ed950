/** `rdma-session bench`: runs the suites on every provider that works here, writes report.json and three SVG plots. */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { createContext, formatMicros, type Context, type PathMtu, type Provider } from '@rdma-session/core'
import { KNOWN_PROVIDERS, knownProvider } from '../command-errors.js'
import { barChart, lineChart } from './svg-chart.js'
import { latency, qosIsolation, throughputAt, type BenchPair, type BenchPlan, type LatencyResult, type LatencyStats, type QosResult, type Summary, type ThroughputPoint } from './suites.js'

export interface BenchOptions {
  /** Directory for report.json and the SVG plots. */
  readonly out: string
  /** Providers to try (default mock, softroce, verbs); those that cannot run here are skipped with the reason. */
  readonly providers?: readonly string[]
  /** Fewer sizes and samples (CI, smoke tests). */
  readonly quick?: boolean
  /** The mock's link rate for the QoS suite, bytes per second (default DEFAULT_MOCK_LINK, 1 Gbit/s). */
  readonly mockLinkBytesPerSecond?: number
  /** Called after each step: (done, total, what). */
  readonly onProgress?: (done: number, total: number, label: string) => void
  /** How a provider is made; tests may substitute. */
  readonly makeProvider?: (name: string, role: 'a' | 'b') => Promise<Provider>
}

export interface BenchReport {
  readonly startedAt: string
  readonly machine: { readonly node: string; readonly cpus: number; readonly cpu: string }
  readonly quick: boolean
  readonly plan: BenchPlan
  readonly providers: readonly string[]
  readonly skipped: ReadonlyArray<{ readonly provider: string; readonly reason: string }>
  readonly throughput: readonly ThroughputPoint[]
  readonly latency: readonly LatencyResult[]
  readonly qos: readonly QosResult[]
  readonly files: readonly string[]
}

/** 1 Gbit/s for the QoS suite on the mock: slow enough that the link, not the CPU, is what the QPs share. */
export const DEFAULT_MOCK_LINK = 125e6

async function defaultProvider(name: string, role: 'a' | 'b', fabric: unknown): Promise<Provider> {
  if (name === 'mock') {
    const m = (await import('@rdma-session/provider-mock')) as { mock(o: object): Provider }
    return m.mock({ fabric })
  }
  if (name === 'softroce') {
    const m = (await import('@rdma-session/provider-softroce')) as { softroce(o: object): Provider }
    return m.softroce({ address: '127.0.0.1', port: 0, deviceName: `bench-${role}` })
  }
  const m = (await import(`@rdma-session/provider-${name}`)) as { createProvider(o?: object): Provider }
  return m.createProvider()
}

async function openPair(name: string, options: BenchOptions, linkRate: boolean): Promise<BenchPair> {
  let make = options.makeProvider
  if (make === undefined) {
    let fabric: unknown
    if (name === 'mock') {
      const { MockFabric } = (await import('@rdma-session/provider-mock')) as { MockFabric: new (o: object) => unknown }
      fabric = new MockFabric(linkRate ? { linkBytesPerSecond: options.mockLinkBytesPerSecond ?? DEFAULT_MOCK_LINK, refTimers: true } : { refTimers: true })
    }
    make = (n, role) => defaultProvider(n, role, fabric)
  }
  let a: Context | null = null
  try {
    a = await createContext({ provider: await make(name, 'a') })
    const b = await createContext({ provider: await make(name, 'b') })
    const mtu = Math.min(4096, a.capabilities.maxMtu, b.capabilities.maxMtu) as PathMtu
    return { provider: name, a, b, mtu }
  } catch (err) {
    await a?.close()
    throw err
  }
}

const sizeText = (n: number): string => (n >= 1 << 20 ? `${n / (1 << 20)} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`)
const gbps = (bytesPerSecond: number): number => (bytesPerSecond * 8) / 1e9

/** Full runs: 12 alternating rounds of ~40 ms per variant and size; quick runs (smoke tests): 4 of ~5 ms. */
export const FULL_PLAN: BenchPlan = { rounds: 12, roundMs: 40, latencyPerRound: 100, qosRounds: 4, probesPerRound: 60 }
export const QUICK_PLAN: BenchPlan = { rounds: 4, roundMs: 5, latencyPerRound: 15, qosRounds: 2, probesPerRound: 20 }

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const quick = options.quick === true
  const plan = quick ? QUICK_PLAN : FULL_PLAN
  const wanted = (options.providers ?? KNOWN_PROVIDERS).map(knownProvider)
  const sizes = quick ? [64, 4096, 65536] : [64, 512, 4096, 32768, 262144]
  const total = wanted.length * (sizes.length + 2)
  let done = 0
  const step = (label: string): void => options.onProgress?.(++done, total, label)
  const report = { startedAt: new Date().toISOString(), machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown' }, quick, plan, providers: [] as string[], skipped: [] as { provider: string; reason: string }[], throughput: [] as ThroughputPoint[], latency: [] as LatencyResult[], qos: [] as QosResult[], files: [] as string[] }

  for (const name of wanted) {
    let pair: BenchPair
    try {
      pair = await openPair(name, options, false)
    } catch (err) {
      const e = err as { code?: string; message?: string }
      report.skipped.push({ provider: name, reason: `${e.code ?? 'Error'}: ${(e.message ?? String(err)).split('\n')[0]}` })
      done += sizes.length + 2
      options.onProgress?.(done, total, `${name}: skipped`)
      continue
    }
    report.providers.push(name)
    try {
      for (const size of sizes) {
        report.throughput.push(await throughputAt(pair, size, plan))
        step(`${name}: throughput ${sizeText(size)}`)
      }
      report.latency.push(await latency(pair, plan))
      step(`${name}: latency`)
    } finally {
      await pair.a.close()
      await pair.b.close()
    }
    // QoS on the mock needs a finite link to share; the other providers have a real one.
    const qosPair = await openPair(name, options, true)
    try {
      report.qos.push(await qosIsolation(qosPair, plan))
      step(`${name}: qos isolation`)
    } finally {
      await qosPair.a.close()
      await qosPair.b.close()
    }
  }

  const out = resolve(options.out)
  mkdirSync(out, { recursive: true })
  const files = report.providers.length > 0 ? writePlots(report, out) : []
  report.files.push(...files, join(out, 'report.json'))
  writeFileSync(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`)
  return report
}

const spread = (x: Summary): { value: number; lo: number; hi: number } => ({ value: x.median, lo: x.min, hi: x.max })

/** µs, or ms when the panel's largest value passes 10 ms: returns the divisor and the unit. */
function timeUnit(maxMicros: number): { div: number; unit: string } {
  return maxMicros >= 10_000 ? { div: 1000, unit: 'ms' } : { div: 1, unit: 'µs' }
}

const shortNumber = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2))

function writePlots(r: Omit<BenchReport, 'files'>, out: string): string[] {
  const written: string[] = []
  const write = (file: string, svg: string): void => {
    writeFileSync(join(out, file), svg)
    written.push(join(out, file))
  }
  const { rounds, roundMs, latencyPerRound, qosRounds, probesPerRound } = r.plan
  write('throughput.svg', lineChart({
    title: 'RDMA WRITE throughput by message size',
    desc: `Each point is the median of ${rounds} rounds of about ${roundMs} ms per variant, 16 writes in flight; the variants alternate round by round. Whiskers span the slowest to the fastest round. Dashed: the provider SPI called directly (baseline); solid: core's qp.write.`,
    xLabel: 'message size (bytes, log2 scale)',
    xFormat: sizeText,
    yFormat: (v) => `${v.toFixed(3)} Gbit/s`,
    panels: r.providers.map((p) => {
      const points = r.throughput.filter((t) => t.provider === p)
      const gb = (s: Summary): Summary => ({ median: gbps(s.median), q1: gbps(s.q1), q3: gbps(s.q3), min: gbps(s.min), max: gbps(s.max) })
      return {
        title: p,
        yLabel: 'throughput (Gbit/s)',
        series: [
          { name: 'SPI directly (baseline)', dashed: true, points: points.map((t) => ({ x: t.size, ...spread(gb(t.baselineBps)) })) },
          { name: 'core qp.write', points: points.map((t) => ({ x: t.size, ...spread(gb(t.coreBps)) })) },
        ],
      }
    }),
  }))
  const latencyBars = (name: string, s: LatencyStats, div: number, q: 'p50' | 'p90' | 'p99') => {
    const rounds = q === 'p50' ? s.roundP50 : q === 'p99' ? s.roundP99 : null
    return rounds === null ? { name, value: s[q] / div } : { name, value: rounds.median / div, lo: rounds.min / div, hi: rounds.max / div }
  }
  write('latency.svg', barChart({
    title: '8-byte RDMA WRITE latency, one at a time',
    desc: `Percentiles of ${rounds * latencyPerRound} writes per variant in ${rounds} alternating rounds. p50 and p99: the median of the rounds' percentiles, whiskers from the lowest to the highest round (one that passes the top is cut there, its end written above); p90: over all samples. Linear axis from zero.`,
    xLabel: 'percentile',
    format: shortNumber,
    panels: r.latency.map((l) => {
      const { div, unit } = timeUnit(Math.max(l.baselineMicros.p99, l.coreMicros.p99))
      return {
        title: l.provider,
        yLabel: `latency (${unit})`,
        groups: (['p50', 'p90', 'p99'] as const).map((q) => ({ label: q, bars: [latencyBars('SPI directly (baseline)', l.baselineMicros, div, q), latencyBars('core qp.write', l.coreMicros, div, q)] })),
      }
    }),
  }))
  write('qos.svg', barChart({
    title: 'QoS isolation: 64-byte writes while bulk QPs flood the link',
    desc: `Latency of ${qosRounds * probesPerRound} 64-byte writes per kind in ${qosRounds} rounds: on the latency QP with the link idle (baseline), on the latency QP during a striped bulk flood of the same session, and on a bulk QP during the flood. Bars: the median of the rounds' percentiles, whiskers from the lowest to the highest round (one that passes the top is cut there, its end written above). Linear axis from zero.`,
    xLabel: 'percentile',
    format: shortNumber,
    panels: r.qos.map((q) => {
      const { div, unit } = timeUnit(Math.max(q.idleMicros.p99, q.isolatedMicros.p99, q.sharedMicros.p99))
      return {
        title: q.provider,
        yLabel: `latency (${unit})`,
        groups: (['p50', 'p99'] as const).map((k) => ({ label: k, bars: [latencyBars('latency QP, link idle (baseline)', q.idleMicros, div, k), latencyBars('latency QP, during flood', q.isolatedMicros, div, k), latencyBars('bulk QP, during flood', q.sharedMicros, div, k)] })),
      }
    }),
  }))
  return written
}

/** The report as a table for the terminal: medians over rounds, with the range of the rounds (lowest–highest) in brackets. */
export function formatBench(r: BenchReport): string {
  const us = formatMicros // the samples' own percentiles (nearest rank), exact: no histogram here
  const range = (s: Summary, f: (v: number) => string): string => `${f(s.median)} [${f(s.min)}–${f(s.max)}]`
  const g = (v: number): string => gbps(v).toFixed(3)
  const rows: string[] = []
  const table = (head: string[], body: string[][]): void => {
    const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
    const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')
    rows.push(line(head), w.map((x) => '-'.repeat(x)).join('  '), ...body.map(line), '')
  }
  const p = r.plan
  rows.push(`medians over alternating rounds, [lowest–highest round]; baseline: the provider SPI directly, same run`, '')
  rows.push(`throughput (RDMA WRITE, 16 in flight, ${p.rounds} rounds of ~${p.roundMs} ms per variant)`)
  table(['provider', 'size', 'ops/round', 'baseline Gb/s', 'core Gb/s', 'core/baseline', 'per CPU time'], r.throughput.map((t) => [t.provider, sizeText(t.size), String(t.ops), range(t.baselineBps, g), range(t.coreBps, g), range(t.ratio, (v) => `${v.toFixed(2)}x`), range(t.cpuRatio, (v) => `${v.toFixed(2)}x`)]))
  rows.push("'per CPU time': core/baseline in bytes per CPU-second of this process, which other processes on the machine do not stretch", '')
  rows.push(`latency (8-byte RDMA WRITE, one at a time, ${p.rounds} rounds of ${p.latencyPerRound}; median of the rounds' p50/p99 [lowest–highest round])`)
  table(['provider', 'samples', 'SPI p50', 'core p50', 'SPI p99', 'core p99', 'core max'], r.latency.map((l) => [l.provider, String(l.samples), range(l.baselineMicros.roundP50, us), range(l.coreMicros.roundP50, us), range(l.baselineMicros.roundP99, us), range(l.coreMicros.roundP99, us), us(l.coreMicros.max)]))
  rows.push(`QoS isolation (64-byte writes, ${p.qosRounds} rounds of ${p.probesPerRound}; baseline: latency QP with the link idle)`)
  table(['provider', 'idle p50', 'idle p99', 'flood p50', 'flood p99', 'bulk QP p50', 'bulk QP p99', 'bulk Gb/s'], r.qos.map((q) => [q.provider, us(q.idleMicros.p50), us(q.idleMicros.p99), us(q.isolatedMicros.p50), us(q.isolatedMicros.p99), us(q.sharedMicros.p50), us(q.sharedMicros.p99), (q.bulkBitsPerSecond / 1e9).toFixed(2)]))
  for (const s of r.skipped) rows.push(`skipped ${s.provider}: ${s.reason}`)
  if (r.providers.length === 0) rows.push('no provider could run here, so no plots were written; `rdma-session doctor` says why')
  rows.push(`wrote ${r.files.join(', ')}`, '')
  return rows.join('\n')
}
