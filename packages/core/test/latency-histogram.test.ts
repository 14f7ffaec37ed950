import { describe, expect, it } from 'vitest'
import { LatencyHistogram, QpStats, formatMicros, formatQuantile, seededRandom } from '../src/index.js'

/** Nearest-rank quantile of the samples themselves: what the histogram estimates. */
function trueQuantile(samples: readonly number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!
}

describe('LatencyHistogram quantiles', () => {
  it('are within the bucket that holds the true quantile, for many distributions (seeded)', () => {
    const random = seededRandom(16)
    for (let run = 0; run < 200; run++) {
      const n = 1 + Math.floor(random() * 500)
      const scale = 2 ** (random() * 20) // 1 µs .. 1 s typical values
      const samples = Array.from({ length: n }, () => scale * Math.exp((random() - 0.5) * 4) * (random() < 0.02 ? 50 : 1))
      const h = new LatencyHistogram()
      for (const s of samples) h.record(s)
      for (const q of [0, 0.1, 0.5, 0.9, 0.99, 0.999, 1]) {
        const truth = trueQuantile(samples, q)
        const e = h.estimate(q)
        expect(e.lowMicros, `run ${run} q ${q}`).toBeLessThanOrEqual(truth)
        expect(e.highMicros, `run ${run} q ${q}`).toBeGreaterThanOrEqual(truth)
        expect(e.micros).toBeGreaterThanOrEqual(e.lowMicros)
        expect(e.micros).toBeLessThanOrEqual(e.highMicros)
        // The resolution: a bucket above 1 µs spans at most a factor of two.
        if (e.lowMicros >= 1) expect(e.highMicros / e.lowMicros).toBeLessThanOrEqual(2)
        else expect(e.highMicros - e.lowMicros).toBeLessThanOrEqual(1)
      }
    }
  })

  it('no longer reports a bucket bound as the percentile: a few-µs median is a few µs', () => {
    // The quickstart's symptom: 3 µs operations were printed as "p50 2048 µs" once one slow op set the max.
    const h = new LatencyHistogram()
    for (let i = 0; i < 99; i++) h.record(3 + (i % 3) * 0.25)
    h.record(1000)
    const p50 = h.estimate(0.5)
    expect(p50.lowMicros).toBe(3)
    expect(p50.highMicros).toBe(4)
    expect(p50.micros).toBeGreaterThan(3)
    expect(p50.micros).toBeLessThan(4)
    expect(h.estimate(0.995).micros).toBe(1000) // the largest sample, exactly
    expect(h.snapshot().p50Micros).toBe(p50.micros)
    expect(h.snapshot().minMicros).toBe(3)
  })

  it('is exact where every sample is the same, and zero when empty', () => {
    const h = new LatencyHistogram()
    for (let i = 0; i < 10; i++) h.record(2048)
    expect(h.estimate(0.5)).toEqual({ micros: 2048, lowMicros: 2048, highMicros: 2048 })
    expect(new LatencyHistogram().snapshot().p99).toEqual({ micros: 0, lowMicros: 0, highMicros: 0 })
  })

  it('merges samples, minimum and maximum', () => {
    const a = new QpStats()
    const b = new QpStats()
    for (let i = 0; i < 10; i++) a.latency.record(5)
    for (let i = 0; i < 10; i++) b.latency.record(500)
    const sum = QpStats.sum([a, b]).latency.snapshot()
    expect(sum.count).toBe(20)
    expect(sum.minMicros).toBe(5)
    expect(sum.maxMicros).toBe(500)
    expect(sum.p99.micros).toBe(500)
    expect(sum.p50.lowMicros).toBe(5)
    expect(sum.p50.highMicros).toBe(8)
  })
})

describe('latency formatting', () => {
  it('writes durations in a unit that fits', () => {
    expect(formatMicros(3.4172)).toBe('3.42 µs')
    expect(formatMicros(34.17)).toBe('34.2 µs')
    expect(formatMicros(850)).toBe('850 µs')
    expect(formatMicros(2048)).toBe('2.05 ms')
    expect(formatMicros(1_200_000)).toBe('1.20 s')
    expect(formatMicros(0)).toBe('0 µs')
  })
  it('writes a quantile with its bucket, or alone when exact', () => {
    expect(formatQuantile('p50', { micros: 3071, lowMicros: 2048, highMicros: 4096 })).toBe('p50 ≈ 3.07 ms (2.05–4.10 ms)')
    expect(formatQuantile('p50', { micros: 3.5, lowMicros: 3, highMicros: 4 })).toBe('p50 ≈ 3.50 µs (3.00–4.00 µs)')
    expect(formatQuantile('p99', { micros: 17_986, lowMicros: 17_986, highMicros: 17_986 })).toBe('p99 18.0 ms')
  })
})
