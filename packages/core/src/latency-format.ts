/** How latencies are printed: a unit that fits the value, and a histogram quantile with the bounds it is known to. */
import type { QuantileEstimate } from './stats.js'

interface Unit {
  readonly name: string
  readonly micros: number
}

const UNITS: readonly Unit[] = [
  { name: 's', micros: 1e6 },
  { name: 'ms', micros: 1e3 },
  { name: 'µs', micros: 1 },
]

function unitFor(micros: number): Unit {
  return UNITS.find((u) => Math.abs(micros) >= u.micros) ?? UNITS[UNITS.length - 1]!
}

/** Three significant digits at most, no trailing zeros past them: 3.42, 34.2, 342. */
function number(value: number): string {
  const a = Math.abs(value)
  return a === 0 ? '0' : a >= 100 ? value.toFixed(0) : a >= 10 ? value.toFixed(1) : value.toFixed(2)
}

/** A duration in µs written in the unit that fits it: `3.42 µs`, `850 µs`, `2.05 ms`, `1.20 s`. */
export function formatMicros(micros: number): string {
  const unit = unitFor(micros)
  return `${number(micros / unit.micros)} ${unit.name}`
}

/**
 * A quantile of a latency histogram, true to the histogram's resolution: the interpolated
 * value and the bucket it lies in, `p50 ≈ 3.07 ms (2.05–4.10 ms)`; a single value when the
 * quantile is known exactly (the smallest or largest sample), `p99 17.9 ms`.
 */
export function formatQuantile(name: string, estimate: QuantileEstimate): string {
  if (estimate.lowMicros === estimate.highMicros) return `${name} ${formatMicros(estimate.micros)}`
  const unit = unitFor(estimate.highMicros)
  return `${name} ≈ ${formatMicros(estimate.micros)} (${number(estimate.lowMicros / unit.micros)}–${number(estimate.highMicros / unit.micros)} ${unit.name})`
}
