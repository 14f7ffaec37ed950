/**
 * rdma-session's metric families as prom-client metrics: a collector an application registers
 * in its own prom-client Registry, next to its other metrics. prom-client writes the exposition
 * (Prometheus text or OpenMetrics, as the registry is set); the values are read from the
 * contexts at every scrape.
 */
import type { Metric, Registry, RegistryContentType } from 'prom-client'

/** A prom-client registry of either exposition format. */
type AnyRegistry = Registry<RegistryContentType>
import { collectMetrics, type MetricFamily, type MetricsSource, type PrometheusOptions } from './families.js'

/** The value records prom-client's Registry formats: `metricName` for a histogram's _bucket/_sum/_count lines. */
interface ValueRecord {
  readonly value: number
  readonly labels: Record<string, string | number>
  readonly metricName?: string
}

/** The families core always exports, declared up front so the first scrape has them all. */
const CORE_FAMILIES: ReadonlyArray<Pick<MetricFamily, 'name' | 'type' | 'help'>> = [
  { name: 'rdma_session_sessions', type: 'gauge', help: 'Established sessions of the device' },
  { name: 'rdma_session_session_qps', type: 'gauge', help: 'QPs in the session' },
  { name: 'rdma_session_session_bytes_sent_total', type: 'counter', help: 'Bytes sent by the session (QPs removed since included)' },
  { name: 'rdma_session_session_bytes_received_total', type: 'counter', help: 'Bytes received by the session' },
  { name: 'rdma_session_session_ops_completed_total', type: 'counter', help: 'Work requests completed successfully' },
  { name: 'rdma_session_session_errors_total', type: 'counter', help: 'Work requests completed with an error status' },
  { name: 'rdma_session_session_latency_microseconds', type: 'histogram', help: 'Work request latency, post to completion (buckets [2^(i-1), 2^i) µs)' },
  { name: 'rdma_session_session_control_dropped_frames_total', type: 'counter', help: "Control-plane frames of the session's channel dropped because they did not authenticate (injected, unsealed, forged)" },
  { name: 'rdma_session_session_control_resumes_total', type: 'counter', help: "Times the session's control channel was resumed on a new connection" },
  { name: 'rdma_session_qp_bytes_sent_total', type: 'counter', help: 'Bytes sent by the QP' },
  { name: 'rdma_session_qp_bytes_received_total', type: 'counter', help: 'Bytes received by the QP' },
  { name: 'rdma_session_qp_ops_completed_total', type: 'counter', help: 'Work requests the QP completed successfully' },
  { name: 'rdma_session_qp_errors_total', type: 'counter', help: 'Work requests the QP completed with an error status' },
  { name: 'rdma_session_qp_outstanding_wrs', type: 'gauge', help: 'Work requests posted and not yet completed' },
  { name: 'rdma_session_qp_backlog_wrs', type: 'gauge', help: 'Promise operations waiting for room in the send queue' },
  { name: 'rdma_session_qp_qos_info', type: 'gauge', help: "The QP's QoS (always 1; the values are labels)" },
  { name: 'rdma_session_qp_latency_microseconds', type: 'histogram', help: 'Work request latency of the QP, post to completion (buckets [2^(i-1), 2^i) µs)' },
]

function valueRecords(family: MetricFamily): ValueRecord[] {
  if (family.type !== 'histogram') return family.samples.map((s) => ({ value: s.value, labels: { ...s.labels } }))
  const out: ValueRecord[] = []
  for (const h of family.samples) {
    for (const b of h.buckets) out.push({ metricName: `${family.name}_bucket`, labels: { ...h.labels, le: b.le }, value: b.count })
    out.push({ metricName: `${family.name}_bucket`, labels: { ...h.labels, le: '+Inf' }, value: h.count })
    out.push({ metricName: `${family.name}_sum`, labels: { ...h.labels }, value: h.sum })
    out.push({ metricName: `${family.name}_count`, labels: { ...h.labels }, value: h.count })
  }
  return out
}

/**
 * Puts the series of `ctx.metrics()` (sessions, QPs, latency histograms, QoS, provider
 * transport counters) into prom-client registries:
 *
 * ```ts
 * const registry = new Registry()
 * new RdmaSessionCollector(() => [ctx]).register(registry)
 * // ... res.end(await registry.metrics())
 * ```
 *
 * Core's own families are registered at once. A provider's counters are named by the provider
 * (`rdma_session_device_<counter>_total`, `rdma_session_qp_wire_<counter>_total`) and are
 * registered when first seen: at register() for the devices and QPs that exist then, and at
 * every scrape after that (a counter first seen in a scrape is exported from the next one).
 * Call sync() to register what exists now, e.g. after creating sessions.
 */
export class RdmaSessionCollector {
  readonly #source: MetricsSource
  readonly #options: PrometheusOptions
  readonly #registries = new Set<AnyRegistry>()
  readonly #declared = new Map<string, Pick<MetricFamily, 'name' | 'type' | 'help'>>()
  /** One collection serves every family of a scrape (prom-client asks each family in turn, in one tick). */
  #current: Map<string, MetricFamily> | null = null

  constructor(contexts: MetricsSource, options: PrometheusOptions = {}) {
    this.#source = contexts
    this.#options = options
    for (const f of CORE_FAMILIES) if (f.name !== 'rdma_session_qp_latency_microseconds' || options.qpHistograms !== false) this.#declared.set(f.name, f)
  }

  /** Registers every family in `registry` (prom-client's own `register` or one of the application's). */
  register(registry: AnyRegistry): this {
    for (const family of this.#declared.values()) this.#registerFamily(registry, family)
    this.#registries.add(registry)
    this.sync()
    return this
  }

  /** Collects now and registers the families seen for the first time (provider counters) in every registry of this collector. */
  sync(): void {
    this.#collect()
  }

  #collect(): Map<string, MetricFamily> {
    if (this.#current !== null) return this.#current
    const families = new Map(collectMetrics(this.#source, this.#options).map((f) => [f.name, f]))
    this.#current = families
    setImmediate(() => (this.#current = null))
    for (const family of families.values()) {
      if (this.#declared.has(family.name)) continue
      this.#declared.set(family.name, family)
      for (const registry of this.#registries) this.#registerFamily(registry, family)
    }
    return families
  }

  #registerFamily(registry: AnyRegistry, declared: Pick<MetricFamily, 'name' | 'type' | 'help'>): void {
    if (registry.getSingleMetric(declared.name) !== undefined) return
    const collector = this
    const metric = {
      name: declared.name,
      help: declared.help,
      type: declared.type,
      aggregator: 'sum' as const,
      collect(): void {},
      reset(): void {},
      async get() {
        const family = collector.#collect().get(declared.name)
        // `metric.name`, not declared.name: an OpenMetrics registry renames counters (drops _total, which it writes back per sample).
        return { name: metric.name, help: declared.help, type: declared.type, aggregator: 'sum' as const, values: family === undefined ? [] : valueRecords(family) }
      },
    }
    // prom-client types registerMetric() with its own classes; the Registry only calls get() and reset() and reads name/help/type.
    registry.registerMetric(metric as unknown as Metric)
  }
}
