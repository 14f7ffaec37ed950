/**
 * Per-session and per-QP metric families, as data (the Prometheus data model; no exposition
 * format here, and no dependency): core's own counters (bytes, ops, errors, latency histograms,
 * queue occupancy, QoS) from session.stats(), plus the provider's transport counters
 * (retransmits, NAKs by kind, drops by reason) through the optional SPI hooks
 * ProviderDevice.metrics() and ProviderQp.metrics(). `@rdma-session/core/prometheus` puts them
 * into a prom-client registry. Each listener's control-plane admission series come from
 * admission-metrics.ts.
 */
import type { Context } from '../context.js'
import type { PeerChannel } from '../session/peer-channel.js'
import type { ProviderMetrics } from '@rdma-session/provider-interface'
import type { LatencySnapshot } from '../stats.js'
import { addAdmissionSamples } from './admission-metrics.js'
/** Label names and values of one series. */
export type Labels = Readonly<Record<string, string | number>>

/** One counter or gauge series. */
export interface Sample {
  readonly labels: Labels
  readonly value: number
}

/** One histogram series. */
export interface HistogramSample {
  readonly labels: Labels
  /** Cumulative counts per upper bound, ascending (without +Inf). */
  readonly buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>
  readonly count: number
  readonly sum: number
}

/** A metric: its name, help, type and series. */
export type MetricFamily =
  | { readonly name: string; readonly help: string; readonly type: 'counter' | 'gauge'; readonly samples: Sample[] }
  | { readonly name: string; readonly help: string; readonly type: 'histogram'; readonly samples: HistogramSample[] }

/** `packetsSent` -> `packets_sent`; anything outside [a-zA-Z0-9_] becomes `_`. */
export function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^a-zA-Z0-9_]/g, '_')
    .toLowerCase()
}

export interface PrometheusOptions {
  /** Per-QP latency histograms (26 series per QP). Default true; sessions always get theirs. */
  readonly qpHistograms?: boolean
  /** Labels added to every sample, e.g. `{ instance: 'db-7' }`. */
  readonly labels?: Labels
}

/** Upper bounds of the exported latency buckets: 1 µs to 2^24 µs (~16.8 s), powers of two. */
const LATENCY_BOUNDS = Array.from({ length: 25 }, (_, i) => 2 ** i)

/** Collects metric families by name, keeping the order in which names first appear. */
class FamilySet {
  readonly #families = new Map<string, MetricFamily>()

  add(name: string, type: 'counter' | 'gauge', help: string, labels: Labels, value: number): void {
    const f = this.#family(name, type, help)
    ;(f.samples as Sample[]).push({ labels, value })
  }

  histogram(name: string, help: string, labels: Labels, latency: LatencySnapshot): void {
    const f = this.#family(name, 'histogram', help)
    let cumulative = 0
    const buckets = LATENCY_BOUNDS.map((le, i) => ({ le, count: (cumulative += latency.buckets[i] ?? 0) }))
    ;(f.samples as HistogramSample[]).push({ labels, buckets, count: latency.count, sum: latency.meanMicros * latency.count })
  }

  /** Provider counters: `prefix` + snake_case name + `_total`, labeled ones with their extra label. */
  provider(prefix: string, what: string, labels: Labels, m: ProviderMetrics): void {
    for (const [name, value] of Object.entries(m.counters)) {
      if (typeof value === 'number') this.add(`${prefix}${snakeCase(name)}_total`, 'counter', `${what} counter '${name}' reported by the provider`, labels, value)
    }
    for (const [name, family] of Object.entries(m.labeled ?? {})) {
      const label = snakeCase(family.label)
      for (const [key, value] of Object.entries(family.values)) {
        if (typeof value === 'number') this.add(`${prefix}${snakeCase(name)}_total`, 'counter', `${what} counter '${name}' by ${family.label}, reported by the provider`, { ...labels, [label]: key }, value)
      }
    }
  }

  get families(): MetricFamily[] {
    return [...this.#families.values()]
  }

  #family(name: string, type: MetricFamily['type'], help: string): MetricFamily {
    let f = this.#families.get(name)
    if (f === undefined) {
      f = { name, type, help, samples: [] } as MetricFamily
      this.#families.set(name, f)
    } else if (f.type !== type) {
      throw new Error(`metric ${name} is both a ${f.type} and a ${type}`)
    }
    return f
  }
}

function readProviderMetrics(source: { metrics?(): ProviderMetrics }): ProviderMetrics | null {
  if (typeof source.metrics !== 'function') return null
  const m = source.metrics()
  return m !== null && typeof m === 'object' && typeof m.counters === 'object' ? m : null
}

/** The contexts to export: one, several, or a function called at every collection (contexts come and go). */
export type MetricsSource = Context | Iterable<Context> | (() => Context | Iterable<Context>)

/** The contexts of a source, now. */
export function contextsOf(source: MetricsSource): Context[] {
  const contexts = typeof source === 'function' ? source() : source
  return Symbol.iterator in Object(contexts) ? [...(contexts as Iterable<Context>)] : [contexts as Context]
}

/** The metric families of one or more contexts (closed contexts are skipped). */
export function collectMetrics(contexts: MetricsSource, options: PrometheusOptions = {}): MetricFamily[] {
  const set = new FamilySet()
  const base = options.labels ?? {}
  const qpHistograms = options.qpHistograms ?? true
  for (const ctx of contextsOf(contexts)) {
    if (ctx.closed) continue
    const dev = { ...base, provider: ctx.provider.name, device: ctx.info.name }
    const ids = ctx.sessions.list()
    set.add('rdma_session_sessions', 'gauge', 'Established sessions of the device', dev, ids.length)
    for (const server of ctx.listeners) addAdmissionSamples((...a) => set.add(...a), { ...dev, listener: server.url }, server.admission)
    const deviceMetrics = readProviderMetrics(ctx.device)
    if (deviceMetrics !== null) set.provider('rdma_session_device_', 'Device', dev, deviceMetrics)

    for (const id of ids) {
      const session = ctx.sessions.get(id)
      const stats = session.stats()
      const s = { ...dev, session: id, remote: session.remoteKey }
      const t = stats.session
      set.add('rdma_session_session_qps', 'gauge', 'QPs in the session', s, t.qps)
      set.add('rdma_session_session_bytes_sent_total', 'counter', 'Bytes sent by the session (QPs removed since included)', s, t.bytesSent)
      set.add('rdma_session_session_bytes_received_total', 'counter', 'Bytes received by the session', s, t.bytesReceived)
      set.add('rdma_session_session_ops_completed_total', 'counter', 'Work requests completed successfully', s, t.opsCompleted)
      set.add('rdma_session_session_errors_total', 'counter', 'Work requests completed with an error status', s, t.errors)
      set.histogram('rdma_session_session_latency_microseconds', 'Work request latency, post to completion (buckets [2^(i-1), 2^i) µs)', s, t.latency)
      // Sessions of a control-plane channel (not in-process links, not test doubles without one).
      const control = (session.peer as PeerChannel | undefined)?.stats?.()
      if (control !== undefined) {
        set.add('rdma_session_session_control_dropped_frames_total', 'counter', 'Control-plane frames of the session\'s channel dropped because they did not authenticate (injected, unsealed, forged)', s, control.droppedFrames)
        set.add('rdma_session_session_control_resumes_total', 'counter', 'Times the session\'s control channel was resumed on a new connection', s, control.resumes)
      }

      const perQp = new Map(stats.qps.map((q) => [q.qpn, q]))
      for (const qp of session.qps) {
        const q = perQp.get(qp.qpn)
        if (q === undefined) continue
        const l = { ...s, qpn: qp.qpn, class: qp.qos.className }
        set.add('rdma_session_qp_bytes_sent_total', 'counter', 'Bytes sent by the QP', l, q.bytesSent)
        set.add('rdma_session_qp_bytes_received_total', 'counter', 'Bytes received by the QP', l, q.bytesReceived)
        set.add('rdma_session_qp_ops_completed_total', 'counter', 'Work requests the QP completed successfully', l, q.opsCompleted)
        set.add('rdma_session_qp_errors_total', 'counter', 'Work requests the QP completed with an error status', l, q.errors)
        const out = qp.outstanding
        set.add('rdma_session_qp_outstanding_wrs', 'gauge', 'Work requests posted and not yet completed', { ...l, queue: 'send' }, out.send)
        set.add('rdma_session_qp_outstanding_wrs', 'gauge', 'Work requests posted and not yet completed', { ...l, queue: 'recv' }, out.recv)
        set.add('rdma_session_qp_backlog_wrs', 'gauge', 'Promise operations waiting for room in the send queue', l, out.backlog)
        set.add('rdma_session_qp_qos_info', 'gauge', 'The QP\'s QoS (always 1; the values are labels)', { ...l, service_level: qp.qos.serviceLevel, traffic_class: qp.qos.trafficClass, weight: qp.qos.weight, rate_limit_bps: qp.qos.rateLimitBps }, 1)
        if (qpHistograms) set.histogram('rdma_session_qp_latency_microseconds', 'Work request latency of the QP, post to completion (buckets [2^(i-1), 2^i) µs)', l, q.latency)
        const qpMetrics = readProviderMetrics(qp.provider)
        if (qpMetrics !== null) set.provider('rdma_session_qp_wire_', 'QP transport', l, qpMetrics)
      }
    }
  }
  return set.families
}
