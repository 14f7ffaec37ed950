import { createServer, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Counter, Registry, type OpenMetricsContentType } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { QpStats, collectMetrics, type Context, type ProviderMetrics, type ServerAdmissionStats } from '../src/index.js'
import { snakeCase } from '../src/metrics/families.js'
import { RdmaSessionCollector, prometheusHandler } from '../src/prometheus.js'
import { parseStrictExposition, samplesBySeries } from './support/strict-exposition.js'

const servers: Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))))
})

/** Serves `handler` on an ephemeral loopback port; the URL of /metrics. */
async function serve(handler: RequestListener): Promise<string> {
  const server = createServer(handler)
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`
}

/** GETs the URL like a Prometheus scrape and reads the body strictly: samples by series. */
async function scrape(url: string): Promise<{ samples: Map<string, number>; text: string; contentType: string | null }> {
  const r = await fetch(url, { headers: { accept: 'text/plain;version=0.0.4' } })
  expect(r.status).toBe(200)
  const text = await r.text()
  return { samples: samplesBySeries(parseStrictExposition(text)), text, contentType: r.headers.get('content-type') }
}

/** The application's own /metrics: its registry (with one metric of its own) rendered by prom-client. */
function appEndpoint(registry: Registry): RequestListener {
  return (_req, res) => {
    registry.metrics().then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body), (err: Error) => res.writeHead(500).end(err.message))
  }
}

function fakeQp(qpn: number, className: string, latencies: number[], bytesSent: number, metrics?: ProviderMetrics) {
  const stats = new QpStats()
  stats.bytesSent = bytesSent
  stats.opsCompleted = latencies.length
  for (const l of latencies) stats.latency.record(l)
  return {
    qpn,
    qos: { className, serviceLevel: 3, trafficClass: 104, weight: 4, rateLimitBps: 250_000_000 },
    outstanding: { send: 2, recv: 5, backlog: 1 },
    stats,
    provider: metrics === undefined ? {} : { metrics: () => metrics },
  }
}

/** A stand-in for a Context with one session of two QPs: what collectMetrics reads, nothing more. */
function fakeContext(options: { closed?: boolean; deviceMetrics?: ProviderMetrics; qpMetrics?: ProviderMetrics; device?: string; latencies?: number[]; listeners?: Array<{ url: string; admission: ServerAdmissionStats }> } = {}): Context {
  const qps = [fakeQp(0x101, 'latency', options.latencies ?? [3, 3, 700], 64, options.qpMetrics), fakeQp(0x202, 'bulk', [5000], 1 << 20)]
  const session = {
    id: 'a'.repeat(32),
    remoteKey: '10.0.0.2:4791',
    qps,
    stats: () => {
      const total = QpStats.sum(qps.map((q) => q.stats))
      return { session: { ...total.snapshot(), qps: qps.length }, qps: qps.map((q) => ({ qpn: q.qpn, class: q.qos.className, ...q.stats.snapshot() })) }
    },
  }
  return {
    closed: options.closed ?? false,
    provider: { name: 'fake' },
    info: { name: options.device ?? 'fake0' },
    device: options.deviceMetrics === undefined ? {} : { metrics: () => options.deviceMetrics },
    sessions: { list: () => [session.id], get: () => session },
    listeners: options.listeners ?? [],
  } as unknown as Context
}

describe('RdmaSessionCollector in the application\'s prom-client registry', () => {
  it('exports per-session and per-QP counters, gauges, QoS and latency histograms next to the app\'s metrics', async () => {
    const registry = new Registry()
    new Counter({ name: 'app_requests_total', help: 'the application\'s own metric', registers: [registry] }).inc(3)
    new RdmaSessionCollector(() => [fakeContext()], { labels: { instance: 'db-7' } }).register(registry)
    const { samples, contentType } = await scrape(await serve(appEndpoint(registry)))
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(samples.get('app_requests_total')).toBe(3)
    const dev = 'instance="db-7",provider="fake",device="fake0"'
    const s = `${dev},session="${'a'.repeat(32)}",remote="10.0.0.2:4791"`
    expect(samples.get(`rdma_session_sessions{${dev}}`)).toBe(1)
    expect(samples.get(`rdma_session_session_qps{${s}}`)).toBe(2)
    expect(samples.get(`rdma_session_session_bytes_sent_total{${s}}`)).toBe(64 + (1 << 20))
    expect(samples.get(`rdma_session_session_ops_completed_total{${s}}`)).toBe(4)
    expect(samples.get(`rdma_session_qp_bytes_sent_total{${s},qpn="257",class="latency"}`)).toBe(64)
    expect(samples.get(`rdma_session_qp_bytes_sent_total{${s},qpn="514",class="bulk"}`)).toBe(1 << 20)
    expect(samples.get(`rdma_session_qp_outstanding_wrs{${s},qpn="257",class="latency",queue="recv"}`)).toBe(5)
    expect(samples.get(`rdma_session_qp_backlog_wrs{${s},qpn="257",class="latency"}`)).toBe(1)
    expect(samples.get(`rdma_session_qp_qos_info{${s},qpn="514",class="bulk",service_level="3",traffic_class="104",weight="4",rate_limit_bps="250000000"}`)).toBe(1)
    // Latency 3, 3, 700 µs: buckets [2,4) and [512,1024); cumulative counts per upper bound.
    const h = `${s},qpn="257",class="latency"`
    expect(samples.get(`rdma_session_qp_latency_microseconds_bucket{${h},le="2"}`)).toBe(0)
    expect(samples.get(`rdma_session_qp_latency_microseconds_bucket{${h},le="4"}`)).toBe(2)
    expect(samples.get(`rdma_session_qp_latency_microseconds_bucket{${h},le="512"}`)).toBe(2)
    expect(samples.get(`rdma_session_qp_latency_microseconds_bucket{${h},le="1024"}`)).toBe(3)
    expect(samples.get(`rdma_session_qp_latency_microseconds_bucket{${h},le="+Inf"}`)).toBe(3)
    expect(samples.get(`rdma_session_qp_latency_microseconds_count{${h}}`)).toBe(3)
    expect(samples.get(`rdma_session_qp_latency_microseconds_sum{${h}}`)).toBeCloseTo(706)
    expect(samples.get(`rdma_session_session_latency_microseconds_count{${s}}`)).toBe(4)
    expect(samples.get(`rdma_session_session_latency_microseconds_bucket{${s},le="8192"}`)).toBe(4)
    expect(samples.get(`rdma_session_session_latency_microseconds_bucket{${s},le="4096"}`)).toBe(3)
  })

  it('exports the provider counters of devices and QPs, registered when first seen', async () => {
    const deviceMetrics: ProviderMetrics = {
      counters: { retransmits: 7, packetsSent: 100 },
      labeled: { naksReceived: { label: 'kind', values: { RNR: 2, PSN_SEQUENCE_ERROR: 1 } }, drops: { label: 'reason', values: { badIcrc: 4 } } },
    }
    const qpMetrics: ProviderMetrics = { counters: { retransmits: 3 }, labeled: { drops: { label: 'reason', values: { replay: 1 } } } }
    const contexts: Context[] = [fakeContext()]
    const registry = new Registry()
    const collector = new RdmaSessionCollector(() => contexts, {}).register(registry)
    const url = await serve(appEndpoint(registry))
    expect([...(await scrape(url)).samples.keys()].some((k) => /rdma_session_(device|qp_wire)_/.test(k))).toBe(false)
    // A context whose provider has counters arrives: its families are registered at the next scrape or sync().
    contexts.push(fakeContext({ device: 'fake1', deviceMetrics, qpMetrics }))
    collector.sync()
    const { samples, text } = await scrape(url)
    const dev = 'provider="fake",device="fake1"'
    expect(samples.get(`rdma_session_device_retransmits_total{${dev}}`)).toBe(7)
    expect(samples.get(`rdma_session_device_packets_sent_total{${dev}}`)).toBe(100)
    expect(samples.get(`rdma_session_device_naks_received_total{${dev},kind="RNR"}`)).toBe(2)
    expect(samples.get(`rdma_session_device_naks_received_total{${dev},kind="PSN_SEQUENCE_ERROR"}`)).toBe(1)
    expect(samples.get(`rdma_session_device_drops_total{${dev},reason="badIcrc"}`)).toBe(4)
    const q = `${dev},session="${'a'.repeat(32)}",remote="10.0.0.2:4791",qpn="257",class="latency"`
    expect(samples.get(`rdma_session_qp_wire_retransmits_total{${q}}`)).toBe(3)
    expect(samples.get(`rdma_session_qp_wire_drops_total{${q},reason="replay"}`)).toBe(1)
    expect(text).toContain('# TYPE rdma_session_device_drops_total counter')
    // The same collector in a second registry: everything it has seen is registered there too.
    const other = new Registry()
    collector.register(other)
    expect(samplesBySeries(parseStrictExposition(await other.metrics())).get(`rdma_session_device_retransmits_total{${dev}}`)).toBe(7)
  })

  it('leaves out per-QP histograms when asked, and works in an OpenMetrics registry', async () => {
    const registry = new Registry<OpenMetricsContentType>()
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
    new RdmaSessionCollector(fakeContext(), { qpHistograms: false }).register(registry)
    const text = await registry.metrics()
    expect(text).not.toContain('rdma_session_qp_latency_microseconds')
    expect(text).toContain('rdma_session_session_latency_microseconds_bucket{')
    expect(text).toMatch(/^rdma_session_qp_bytes_sent_total\{/m)
    expect(text).not.toContain('_total_total')
    expect(text.endsWith('# EOF\n')).toBe(true)
  })

  it('turns provider counter names into metric names', () => {
    expect(snakeCase('packetsSent')).toBe('packets_sent')
    expect(snakeCase('naksReceived')).toBe('naks_received')
    expect(snakeCase('qp-not-ready')).toBe('qp_not_ready')
    expect(snakeCase('badIcrc')).toBe('bad_icrc')
  })
})

describe('prometheusHandler (a ready /metrics endpoint)', () => {
  it('serves every series on the first scrape with the Prometheus content type, HEAD without a body, and refuses POST', async () => {
    const deviceMetrics: ProviderMetrics = { counters: { retransmits: 7 } }
    const url = await serve(prometheusHandler(() => [fakeContext({ deviceMetrics })]))
    const { samples, text, contentType } = await scrape(url)
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(text).toContain('rdma_session_session_qps{')
    expect(samples.get('rdma_session_device_retransmits_total{provider="fake",device="fake0"}')).toBe(7)
    const head = await fetch(url, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    expect((await fetch(url, { method: 'POST' })).status).toBe(405)
  })

  it('answers 500 with the reason when collecting fails', async () => {
    const broken = { ...fakeContext(), closed: false, provider: { name: 'fake' }, info: { name: 'x' }, device: { metrics: () => { throw new Error('device gone') } } } as unknown as Context
    const r = await fetch(await serve(prometheusHandler(broken)))
    expect(r.status).toBe(500)
    expect(await r.text()).toContain('device gone')
  })
})

describe('collectMetrics (the families as data)', () => {
  it('merges several contexts into one family per metric, skips closed ones, and can leave out per-QP histograms', () => {
    const families = collectMetrics([fakeContext({ device: 'fake0' }), fakeContext({ device: 'fake1' }), fakeContext({ closed: true, device: 'gone' })], { qpHistograms: false })
    const sessions = families.find((f) => f.name === 'rdma_session_sessions')!
    expect(sessions.samples.map((s) => s.labels.device)).toEqual(['fake0', 'fake1'])
    expect(families.some((f) => f.name === 'rdma_session_qp_latency_microseconds')).toBe(false)
    expect(families.some((f) => f.name === 'rdma_session_session_latency_microseconds')).toBe(true)
    expect(new Set(families.map((f) => f.name)).size).toBe(families.length)
  })

  it('exports each listener\'s admission of unauthenticated connections: pool, refusals by reason, limits', () => {
    const admission: ServerAdmissionStats = {
      pending: 7, peakPending: 128, admitted: 900, completed: 40, earlyDropped: 500, evicted: 30, timedOut: 12, authenticatedConnections: 3, maxConnections: 256, refusedAtLimit: 2,
      limits: { maxPending: 128, maxPendingPerAddress: 16, earlyDropAt: 64, earlyDropRate: 0.3, handshakeTimeoutMs: 5000 },
    }
    const families = collectMetrics(fakeContext({ listeners: [{ url: 'ws://127.0.0.1:7471', admission }] }))
    const value = (name: string, extra: Record<string, string> = {}): number | undefined => {
      const family = families.find((f) => f.name === name)
      const want = { provider: 'fake', device: 'fake0', listener: 'ws://127.0.0.1:7471', ...extra }
      const sample = family?.samples.find((x) => Object.entries(want).every(([k, v]) => String(x.labels[k]) === v))
      return sample !== undefined && 'value' in sample ? sample.value : undefined
    }
    expect(value('rdma_session_control_pending_connections')).toBe(7)
    expect(value('rdma_session_control_pending_connections_peak')).toBe(128)
    expect(value('rdma_session_control_authenticated_connections')).toBe(3)
    expect(value('rdma_session_control_admitted_total')).toBe(900)
    expect(value('rdma_session_control_handshakes_completed_total')).toBe(40)
    expect(value('rdma_session_control_admission_refused_total', { reason: 'early_drop' })).toBe(500)
    expect(value('rdma_session_control_admission_refused_total', { reason: 'evicted' })).toBe(30)
    expect(value('rdma_session_control_admission_refused_total', { reason: 'handshake_timeout' })).toBe(12)
    expect(value('rdma_session_control_admission_refused_total', { reason: 'max_connections' })).toBe(2)
    expect(value('rdma_session_control_admission_limit', { limit: 'max_pending_per_address' })).toBe(16)
    expect(value('rdma_session_control_admission_limit', { limit: 'handshake_timeout_ms' })).toBe(5000)
    expect(value('rdma_session_control_admission_limit', { limit: 'max_connections' })).toBe(256)
    expect(collectMetrics(fakeContext()).some((f) => f.name.startsWith('rdma_session_control_'))).toBe(false)
  })

  it('histogram buckets are cumulative, place each sample by its power-of-two bucket, and keep the tail in +Inf', () => {
    const family = collectMetrics(fakeContext({ latencies: [0.5, 1, 1.5, 2, 100, 100, 3e7] })).find((f) => f.name === 'rdma_session_qp_latency_microseconds')
    expect(family?.type).toBe('histogram')
    const h = (family!.samples as { labels: { class: string }; buckets: { le: number; count: number }[]; count: number; sum: number }[]).find((x) => x.labels.class === 'latency')!
    const at = (le: number) => h.buckets.find((b) => b.le === le)!.count
    expect([at(1), at(2), at(4), at(64), at(128), at(2 ** 24)]).toEqual([1, 3, 4, 4, 6, 6])
    expect(h.count).toBe(7)
    expect(h.sum).toBeCloseTo(0.5 + 1 + 1.5 + 2 + 200 + 3e7)
    for (let i = 1; i < h.buckets.length; i++) expect(h.buckets[i]!.count).toBeGreaterThanOrEqual(h.buckets[i - 1]!.count)
    expect(h.buckets.length).toBe(25)
  })
})

describe('the strict exposition reader used above', () => {
  it('refuses what Prometheus would refuse', () => {
    const ok = '# HELP a_total x\n# TYPE a_total counter\na_total{l="v"} 1\n'
    expect(parseStrictExposition(ok)[0]!.samples[0]!.value).toBe(1)
    for (const [bad, why] of [
      ['a_total 1', /newline/],
      ['# TYPE a_total counter\na_total{l="v} 1\n', /unterminated/],
      ['bad-name 1\n', /invalid metric name/],
      ['a{l="1",l="2"} 1\n', /twice/],
      ['a 1\na 2\n', /duplicate series/],
      ['# TYPE a counter\na 1\n', /_total/],
      ['a 1\nb 1\na{x="y"} 1\n', /not together/],
      ['a 1\n# TYPE a gauge\n', /TYPE given twice or after samples/],
      ['a{l="\\q"} 1\n', /invalid escape/],
      ['a one\n', /invalid value/],
      ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /not cumulative/],
      ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /\+Inf/],
      ['# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', /differs from _count/],
    ] as const) expect(() => parseStrictExposition(bad), bad).toThrow(why)
  })
})
