/** Metric families and their Prometheus text exposition (format 0.0.4), written by hand: no dependency. */

export type Labels = Readonly<Record<string, string | number>>

export interface Sample {
  readonly labels: Labels
  readonly value: number
}

export interface HistogramSample {
  readonly labels: Labels
  /** Cumulative counts per upper bound, ascending (without +Inf). */
  readonly buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>
  readonly count: number
  readonly sum: number
}

export type MetricFamily =
  | { readonly name: string; readonly help: string; readonly type: 'counter' | 'gauge'; readonly samples: Sample[] }
  | { readonly name: string; readonly help: string; readonly type: 'histogram'; readonly samples: HistogramSample[] }

/** The content type a /metrics endpoint answers with. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** `packetsSent` -> `packets_sent`; anything outside [a-zA-Z0-9_] becomes `_`. */
export function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^a-zA-Z0-9_]/g, '_')
    .toLowerCase()
}

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  return String(v)
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const parts: string[] = []
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_NAME.test(k)) throw new Error(`invalid Prometheus label name '${k}'`)
    parts.push(`${k}="${escapeLabelValue(String(v))}"`)
  }
  if (extra !== undefined) parts.push(`${extra[0]}="${extra[1]}"`)
  return parts.length === 0 ? '' : `{${parts.join(',')}}`
}

/** The text exposition of `families`; families without samples are left out. */
export function formatExposition(families: readonly MetricFamily[]): string {
  const out: string[] = []
  for (const f of families) {
    if (f.samples.length === 0) continue
    if (!METRIC_NAME.test(f.name)) throw new Error(`invalid Prometheus metric name '${f.name}'`)
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`)
    if (f.type === 'histogram') {
      for (const h of f.samples) {
        for (const b of h.buckets) out.push(`${f.name}_bucket${formatLabels(h.labels, ['le', formatValue(b.le)])} ${b.count}`)
        out.push(`${f.name}_bucket${formatLabels(h.labels, ['le', '+Inf'])} ${h.count}`)
        out.push(`${f.name}_sum${formatLabels(h.labels)} ${formatValue(h.sum)}`)
        out.push(`${f.name}_count${formatLabels(h.labels)} ${h.count}`)
      }
    } else {
      for (const s of f.samples) out.push(`${f.name}${formatLabels(s.labels)} ${formatValue(s.value)}`)
    }
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`
}
