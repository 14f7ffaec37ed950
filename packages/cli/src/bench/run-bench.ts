/** `rdma-session bench`: runs the suites on every provider that works here, writes report.json and three SVG plots. */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { createContext, type Context, type PathMtu, type Provider } from '@rdma-session/core'
import { KNOWN_PROVIDERS, knownProvider } from '../command-errors.js'
import { barChart, lineChart } from './svg-chart.js'
import { latency, qosIsolation, throughputAt, type BenchPair, type LatencyResult, type QosResult, type ThroughputPoint } from './suites.js'

export interface BenchOptions {
  /** Directory for report.json and the SVG plots. */
  readonly out: string
  /** Providers to try (default mock, softroce, verbs); those that cannot run here are skipped with the reason. */
  readonly providers?: readonly string[]
  /** Fewer sizes and samples (CI, smoke tests). */
  readonly quick?: boolean
  /** Called after each step: (done, total, what). */
  readonly onProgress?: (done: number, total: number, label: string) => void
  /** How a provider is made; tests may substitute. */
  readonly makeProvider?: (name: string, role: 'a' | 'b') => Promise<Provider>
}

export interface BenchReport {
  readonly startedAt: string
  readonly machine: { readonly node: string; readonly cpus: number; readonly cpu: string }
  readonly quick: boolean
  readonly providers: readonly string[]
  readonly skipped: ReadonlyArray<{ readonly provider: string; readonly reason: string }>
  readonly throughput: readonly ThroughputPoint[]
  readonly latency: readonly LatencyResult[]
  readonly qos: readonly QosResult[]
  readonly files: readonly string[]
}

// 1 Gbps for the QoS suite on the mock: slow enough that the link, not the CPU, is what the QPs share.
const MOCK_LINK = 125e6

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
      fabric = new MockFabric(linkRate ? { linkBytesPerSecond: MOCK_LINK, refTimers: true } : { refTimers: true })
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

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const quick = options.quick === true
  const wanted = (options.providers ?? KNOWN_PROVIDERS).map(knownProvider)
  const sizes = quick ? [64, 4096, 65536] : [64, 512, 4096, 32768, 262144]
  const budget = quick ? 1 << 20 : 8 << 20
  const samples = quick ? 60 : 400
  const probes = quick ? 40 : 150
  const total = wanted.length * (sizes.length + 2)
  let done = 0
  const step = (label: string): void => options.onProgress?.(++done, total, label)
  const report = { startedAt: new Date().toISOString(), machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown' }, quick, providers: [] as string[], skipped: [] as { provider: string; reason: string }[], throughput: [] as ThroughputPoint[], latency: [] as LatencyResult[], qos: [] as QosResult[], files: [] as string[] }

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
        report.throughput.push(await throughputAt(pair, size, budget))
        step(`${name}: throughput ${sizeText(size)}`)
      }
      report.latency.push(await latency(pair, samples))
      step(`${name}: latency`)
    } finally {
      await pair.a.close()
      await pair.b.close()
    }
    // QoS on the mock needs a finite link to share; the other providers have a real one.
    const qosPair = await openPair(name, options, true)
    try {
      report.qos.push(await qosIsolation(qosPair, probes))
      step(`${name}: qos isolation`)
    } finally {
      await qosPair.a.close()
      await qosPair.b.close()
    }
  }

  const out = resolve(options.out)
  mkdirSync(out, { recursive: true })
  const files = writePlots(report, out)
  report.files.push(...files, join(out, 'report.json'))
  writeFileSync(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`)
  return report
}

function writePlots(r: Omit<BenchReport, 'files'>, out: string): string[] {
  const written: string[] = []
  const write = (file: string, svg: string): void => {
    writeFileSync(join(out, file), svg)
    written.push(join(out, file))
  }
  write('throughput.svg', lineChart({
    title: 'RDMA WRITE throughput vs message size (16 in flight)',
    xLabel: 'message size',
    yLabel: 'Gbit/s',
    xFormat: sizeText,
    yFormat: (v) => v.toFixed(v < 1 ? 2 : 1),
    series: r.providers.flatMap((p) => [
      { name: `${p} SPI (baseline)`, dashed: true, points: r.throughput.filter((t) => t.provider === p).map((t) => [t.size, gbps(t.baselineBps)] as const) },
      { name: `${p} core qp.write`, points: r.throughput.filter((t) => t.provider === p).map((t) => [t.size, gbps(t.coreBps)] as const) },
    ]),
  }))
  write('latency.svg', barChart({
    title: '8-byte RDMA WRITE latency percentiles',
    xLabel: 'provider and percentile',
    yLabel: 'µs (log scale)',
    log: true,
    yFormat: (v) => v.toFixed(0),
    groups: r.latency.flatMap((l) => (['p50', 'p90', 'p99'] as const).map((q) => ({ label: `${l.provider} ${q}`, bars: [{ name: 'SPI (baseline)', value: l.baselineMicros[q] }, { name: 'core qp.write', value: l.coreMicros[q] }] }))),
  }))
  write('qos.svg', barChart({
    title: 'QoS isolation: 64-byte writes while bulk QPs flood the link',
    xLabel: 'provider and percentile',
    yLabel: 'µs (log scale)',
    log: true,
    yFormat: (v) => v.toFixed(0),
    groups: r.qos.flatMap((q) => (['p50', 'p99'] as const).map((k) => ({ label: `${q.provider} ${k}`, bars: [{ name: 'latency QP, idle (baseline)', value: q.idleMicros[k] }, { name: 'latency QP, flood', value: q.isolatedMicros[k] }, { name: 'bulk QP, flood (shared)', value: q.sharedMicros[k] }] }))),
  }))
  return written
}

/** The report as a table for the terminal. */
export function formatBench(r: BenchReport): string {
  const us = (v: number): string => (v >= 1000 ? `${(v / 1000).toFixed(1)} ms` : `${v.toFixed(0)} µs`)
  const rows: string[] = []
  const table = (head: string[], body: string[][]): void => {
    const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
    const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')
    rows.push(line(head), w.map((x) => '-'.repeat(x)).join('  '), ...body.map(line), '')
  }
  rows.push(`throughput (RDMA WRITE, 16 in flight; baseline: the provider SPI directly, same run)`)
  table(['provider', 'size', 'ops', 'baseline Gb/s', 'core Gb/s', 'core/baseline'], r.throughput.map((t) => [t.provider, sizeText(t.size), String(t.ops), gbps(t.baselineBps).toFixed(3), gbps(t.coreBps).toFixed(3), `${t.ratio.toFixed(2)}x`]))
  rows.push('latency (8-byte RDMA WRITE, one at a time; baseline: SPI)')
  table(['provider', 'samples', 'SPI p50', 'SPI p99', 'core p50', 'core p90', 'core p99', 'core max'], r.latency.map((l) => [l.provider, String(l.samples), us(l.baselineMicros.p50), us(l.baselineMicros.p99), us(l.coreMicros.p50), us(l.coreMicros.p90), us(l.coreMicros.p99), us(l.coreMicros.max)]))
  rows.push('QoS isolation (64-byte writes; baseline: latency QP with the link idle)')
  table(['provider', 'idle p50', 'idle p99', 'flood p50', 'flood p99', 'shared QP p50', 'shared QP p99', 'bulk Gb/s'], r.qos.map((q) => [q.provider, us(q.idleMicros.p50), us(q.idleMicros.p99), us(q.isolatedMicros.p50), us(q.isolatedMicros.p99), us(q.sharedMicros.p50), us(q.sharedMicros.p99), (q.bulkBitsPerSecond / 1e9).toFixed(2)]))
  for (const s of r.skipped) rows.push(`skipped ${s.provider}: ${s.reason}`)
  rows.push(`wrote ${r.files.join(', ')}`, '')
  return rows.join('\n')
}
