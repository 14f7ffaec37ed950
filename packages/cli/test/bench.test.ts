import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { QUICK_PLAN, formatBench, runBench } from '../src/bench/run-bench.js'
import { progressBar } from '../src/bench/progress-bar.js'
import { percentiles, summarize } from '../src/bench/suites.js'
import { barChart, lineChart, niceScale, tickLabels } from '../src/bench/svg-chart.js'
import { expectReadable, renderArtifacts } from './chart-render.js'

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
    const report = await runBench({ out, quick: true, providers: ['mock', 'softroce'], onProgress: (d, t, l) => progress.push(`${d}/${t} ${l}`) })
    expect(report.providers).toEqual(['mock', 'softroce'])
    expect(report.plan).toEqual(QUICK_PLAN)
    expect(progress.at(-1)).toBe('10/10 softroce: qos isolation')
    expect(progress).toContain('3/10 mock: throughput 64 KiB')
    for (const p of ['mock', 'softroce']) {
      const t = report.throughput.filter((x) => x.provider === p)
      expect(t.map((x) => x.size)).toEqual([64, 4096, 65536])
      for (const x of t) {
        expect(x.rounds).toBe(QUICK_PLAN.rounds)
        for (const s of [x.baselineBps, x.coreBps, x.ratio, x.cpuRatio]) {
          expect(s.min).toBeGreaterThan(0)
          expect(s.min <= s.q1 && s.q1 <= s.median && s.median <= s.q3 && s.q3 <= s.max, JSON.stringify(s)).toBe(true)
        }
      }
      const l = report.latency.find((x) => x.provider === p)!
      expect(l.samples).toBe(QUICK_PLAN.rounds * QUICK_PLAN.latencyPerRound)
      expect(l.coreMicros.p50).toBeGreaterThan(0)
      expect(l.coreMicros.p99).toBeGreaterThanOrEqual(l.coreMicros.p50)
      expect(l.coreMicros.roundP50.max).toBeGreaterThanOrEqual(l.coreMicros.roundP50.min)
      const q = report.qos.find((x) => x.provider === p)!
      expect(q.bulkBitsPerSecond).toBeGreaterThan(0)
      expect(q.isolatedMicros.p50).toBeGreaterThan(0)
    }
    // The mock's QoS suite runs over a 1 Gbps link: the bulk flood cannot exceed it.
    expect(report.qos.find((x) => x.provider === 'mock')!.bulkBitsPerSecond).toBeLessThan(1.05e9)
    for (const f of ['throughput.svg', 'latency.svg', 'qos.svg']) {
      const svg = readFileSync(join(out, f), 'utf8')
      expectWellFormed(svg)
      expectReadable(svg)
      expect(svg).toContain('>mock<')
      expect(svg).toContain('>softroce<')
    }
    expect(readFileSync(join(out, 'throughput.svg'), 'utf8')).toContain('SPI directly (baseline)')
    expect(readFileSync(join(out, 'qos.svg'), 'utf8')).toContain('latency QP, link idle (baseline)')
    const json = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'))
    expect(json.throughput).toHaveLength(6)
    expect(json.files).toContain(join(out, 'report.json'))
    const table = formatBench(report)
    expect(table).toContain('medians over alternating rounds, [lowest–highest round]')
    expect(table).toMatch(/^mock +64 B +\d+ +[\d.]+ \[[\d.]+–[\d.]+\] +[\d.]+ \[[\d.]+–[\d.]+\] +[\d.]+x \[[\d.]+x–[\d.]+x\] +[\d.]+x \[[\d.]+x–[\d.]+x\]$/m)
    expect(existsSync(join(out, 'latency.svg'))).toBe(true)
    renderArtifacts('bench-quick', out)
  })

  it('refuses unknown providers before measuring anything', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'bench-')), 'out')
    await expect(runBench({ out, quick: true, providers: ['mock', 'nonexistent'] })).rejects.toThrow("unknown provider 'nonexistent' (known providers: mock, softroce, verbs)")
    expect(existsSync(out)).toBe(false)
  })

  it('a provider that cannot run is skipped with its reason; with none left, no plots are written', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-'))
    const report = await runBench({ out, quick: true, providers: ['verbs'], makeProvider: async () => { throw Object.assign(new Error('no RDMA device'), { code: 'ERR_NO_DEVICE' }) } })
    expect(report.providers).toEqual([])
    expect(report.skipped).toEqual([{ provider: 'verbs', reason: 'ERR_NO_DEVICE: no RDMA device' }])
    expect(report.files).toEqual([join(out, 'report.json')])
    expect(existsSync(join(out, 'throughput.svg'))).toBe(false)
    expect(formatBench(report)).toContain('no provider could run here, so no plots were written')
  })
})

describe('bench pieces', () => {
  it('summaries give the median, quartiles and extremes of the rounds', () => {
    expect(summarize([5, 1, 3, 2, 4])).toEqual({ median: 3, q1: 2, q3: 4, min: 1, max: 5 })
    expect(summarize([1, 2, 3, 4])).toEqual({ median: 2.5, q1: 1, q3: 3, min: 1, max: 4 })
  })

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
    expect(tickLabels(0.25, 1)).toEqual(['0.00', '0.25', '0.50', '0.75', '1.00'])
    expect(tickLabels(2.5, 10)).toEqual(['0.0', '2.5', '5.0', '7.5', '10.0'])
    expect(tickLabels(20, 100)).toEqual(['0', '20', '40', '60', '80', '100'])
    const text = { title: 'T <&>', desc: 'what and how', xLabel: 'size (bytes)' }
    const line = lineChart({ ...text, xFormat: String, yFormat: String, panels: [{ title: 'p', yLabel: 'y (unit)', series: [{ name: 'a', points: [{ x: 64, value: 1, lo: 0.5, hi: 1.5 }, { x: 4096, value: 4 }] }, { name: 'b', dashed: true, points: [{ x: 64, value: 2 }, { x: 4096, value: 2 }] }] }] })
    expectWellFormed(line)
    expectReadable(line)
    expect(line).toContain('T &lt;&amp;&gt;')
    expect(line).toContain('stroke-dasharray')
    const ys = [...line.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]))
    expect(ys[1]!).toBeLessThan(ys[0]!) // a larger value is drawn higher
    expect(line).toMatch(/<path d="M[\d.]+ [\d.]+V[\d.]+/) // the whisker of the first point
    // Bars: linear from zero, so heights are proportional to values.
    const bars = barChart({ ...text, format: String, panels: [{ title: 'p', yLabel: 'latency (µs)', groups: [{ label: 'g', bars: [{ name: 'low', value: 10 }, { name: 'high', value: 1000 }] }] }] })
    expectWellFormed(bars)
    expectReadable(bars)
    const heights = [...bars.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"/g)].map((m) => Number(m[1]))
    expect(heights[1]! / heights[0]!).toBeCloseTo(100, 0)
    expect(bars).toContain('>10<') // the value on top of the small bar
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
