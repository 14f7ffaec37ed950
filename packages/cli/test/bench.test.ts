import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { formatBench, runBench } from '../src/bench/run-bench.js'
import { progressBar } from '../src/bench/progress-bar.js'
import { percentiles } from '../src/bench/suites.js'
import { barChart, lineChart, niceScale } from '../src/bench/svg-chart.js'

/** Tags open and close in order (a cheap well-formedness check without an XML parser). */
function expectWellFormed(svg: string): void {
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
  const stack: string[] = []
  for (const m of svg.matchAll(/<(\/?)([a-z]+)[^>]*?(\/?)>/g)) {
    if (m[3] === '/') continue
    if (m[1] === '/') expect(stack.pop(), `</${m[2]}> closes the wrong tag`).toBe(m[2])
    else stack.push(m[2]!)
  }
  expect(stack).toEqual([])
  expect(svg).not.toMatch(/NaN|undefined|Infinity/)
}

describe('bench', () => {
  it('runs the quick suites on mock and softroce with progress, and writes a report and three plots against same-run baselines', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-'))
    const progress: string[] = []
    const report = await runBench({ out, quick: true, providers: ['mock', 'softroce', 'nonexistent'], onProgress: (d, t, l) => progress.push(`${d}/${t} ${l}`) })
    expect(report.providers).toEqual(['mock', 'softroce'])
    expect(report.skipped).toEqual([{ provider: 'nonexistent', reason: expect.stringMatching(/ERR_MODULE_NOT_FOUND|Cannot find/) }])
    expect(progress.at(-1)).toBe('15/15 nonexistent: skipped')
    expect(progress).toContain('3/15 mock: throughput 64 KiB')
    for (const p of ['mock', 'softroce']) {
      const t = report.throughput.filter((x) => x.provider === p)
      expect(t.map((x) => x.size)).toEqual([64, 4096, 65536])
      for (const x of t) {
        expect(x.baselineBps).toBeGreaterThan(0)
        expect(x.coreBps).toBeGreaterThan(0)
        expect(x.ratio).toBeCloseTo(x.coreBps / x.baselineBps)
      }
      const l = report.latency.find((x) => x.provider === p)!
      expect(l.samples).toBe(60)
      expect(l.coreMicros.p50).toBeGreaterThan(0)
      expect(l.coreMicros.p99).toBeGreaterThanOrEqual(l.coreMicros.p50)
      const q = report.qos.find((x) => x.provider === p)!
      expect(q.bulkBitsPerSecond).toBeGreaterThan(0)
      expect(q.isolatedMicros.p50).toBeGreaterThan(0)
    }
    // The mock's QoS suite runs over a 1 Gbps link: the bulk flood cannot exceed it.
    expect(report.qos.find((x) => x.provider === 'mock')!.bulkBitsPerSecond).toBeLessThan(1.05e9)
    for (const f of ['throughput.svg', 'latency.svg', 'qos.svg']) {
      const svg = readFileSync(join(out, f), 'utf8')
      expectWellFormed(svg)
      expect(svg).toContain('mock')
    }
    expect(readFileSync(join(out, 'throughput.svg'), 'utf8')).toContain('softroce SPI (baseline)')
    expect(readFileSync(join(out, 'qos.svg'), 'utf8')).toContain('latency QP, idle (baseline)')
    const json = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'))
    expect(json.throughput).toHaveLength(6)
    expect(json.files).toContain(join(out, 'report.json'))
    const table = formatBench(report)
    expect(table).toMatch(/throughput \(RDMA WRITE, 16 in flight; baseline: the provider SPI directly, same run\)/)
    expect(table).toMatch(/^mock +64 B +\d+ +[\d.]+ +[\d.]+ +[\d.]+x$/m)
    expect(table).toContain('skipped nonexistent:')
    expect(existsSync(join(out, 'latency.svg'))).toBe(true)
  })
})

describe('bench pieces', () => {
  it('percentiles are nearest-rank over the samples', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1)
    expect(percentiles(xs)).toEqual({ p50: 50, p90: 90, p99: 99, max: 100 })
    expect(percentiles([7])).toEqual({ p50: 7, p90: 7, p99: 7, max: 7 })
    expect(percentiles([])).toEqual({ p50: 0, p90: 0, p99: 0, max: 0 })
  })

  it('scales and draws charts that are well-formed and place points by value', () => {
    expect(niceScale(7.3)).toEqual({ top: 8, step: 2 })
    expect(niceScale(0)).toEqual({ top: 1, step: 0.2 })
    expect(niceScale(950)).toEqual({ top: 1000, step: 200 })
    const line = lineChart({ title: 'T <&>', xLabel: 'x', yLabel: 'y', xFormat: String, yFormat: String, series: [{ name: 'a', points: [[64, 1], [4096, 4]] }, { name: 'b', dashed: true, points: [[64, 2], [4096, 2]] }] })
    expectWellFormed(line)
    expect(line).toContain('T &lt;&amp;&gt;')
    expect(line).toContain('stroke-dasharray')
    const ys = [...line.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]))
    expect(ys[1]!).toBeLessThan(ys[0]!) // a larger value is drawn higher
    const bars = barChart({ title: 't', xLabel: 'x', yLabel: 'y', yFormat: String, groups: [{ label: 'g', bars: [{ name: 'low', value: 1 }, { name: 'high', value: 3 }] }] })
    expectWellFormed(bars)
    const heights = [...bars.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"/g)].map((m) => Number(m[1]))
    expect(heights[1]! / heights[0]!).toBeCloseTo(3, 1)
    // Log scale: 10 µs and 1000 µs are one and three decades above 1.
    const logBars = barChart({ title: 't', xLabel: 'x', yLabel: 'y', yFormat: String, log: true, groups: [{ label: 'g', bars: [{ name: 'a', value: 10 }, { name: 'b', value: 1000 }] }] })
    expectWellFormed(logBars)
    const logHeights = [...logBars.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"/g)].map((m) => Number(m[1]))
    expect(logHeights[1]! / logHeights[0]!).toBeCloseTo(3, 1)
    expect(logBars).toContain('>1000<')
  })

  it('the progress bar redraws in place on a terminal and prints lines otherwise', () => {
    const tty: string[] = []
    const bar = progressBar((t) => tty.push(t), true, 10)
    bar(1, 2, 'one')
    bar(2, 2, 'two')
    expect(tty).toEqual(['\r\x1b[K[#####.....] 1/2 one', '\r\x1b[K[##########] 2/2 two\n'])
    const plain: string[] = []
    progressBar((t) => plain.push(t), false, 4)(1, 4, 'x')
    expect(plain).toEqual(['[#...] 1/4 x\n'])
  })
})
