/**
 * @rdma-session/core/prometheus: rdma-session's metrics through prom-client (an optional peer
 * dependency: install prom-client to use this entry point; the main entry never loads it).
 * @packageDocumentation
 */
export { RdmaSessionCollector } from './metrics/prom-client-collector.js'
export { prometheusHandler, renderPrometheus } from './metrics/metrics-handler.js'
export { collectMetrics, type MetricFamily, type MetricsSource, type PrometheusOptions } from './metrics/families.js'
