import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { PROMETHEUS_CONTENT_TYPE, QpStats, collectMetrics, formatExposition, prometheusHandler, renderPrometheus, type Context, type ProviderMetrics, type ServerAdmissionStats } from '../src/index.js'
import { snakeCase } from '../src/metrics/exposition.js'

/** Parses the text exposition strictly enough to catch format mistakes: returns samples by series. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  const typed = new Map<string, string>()
  expect(text.endsWith('\n')).toBe(true)
  for (const line of text.trimEnd().split('\n')) {
    if (line.startsWith('# HELP ')) continue
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line)
    if (t !== null) {
      expect(typed.has(t[1]!), `TYPE of ${t[1]} given twice`).toBe(false)
      typed.set(t[1]!, t[2]!)
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|\+Inf|NaN)$/.exec(line)
    expect(m, `not a valid sample line: ${line}`).not.toBeNull()
    const family = m![1]!.replace(/_(bucket|sum|count)$/, '')
    expect(typed.has(m![1]!) || typed.get(family) === 'histogram', `sample ${m![1]} before its TYPE`).toBe(true)
    expect(samples.has(`${m![1]}${m![2] ?? ''}`), `duplicate series ${line}`).toBe(false)
    samples.set(`${m![1]}${m![2] ?? ''}`, Number(m![3] === '+Inf' ? Infinity : m![3]))
  }
  return samples
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
function fakeContext(options: { closed?: boolean; deviceMetrics?: ProviderMetrics; qpMetrics?: ProviderMetrics; device?: string; latencies?: number[]; listeners?: { url: string; admission: ServerAdmissionStats }[] } = {}): Context {
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

describe('Prometheus exposition', () => {
  it('formats counters, gauges and histograms with escaped labels, and leaves out empty families', () => {
    const text = formatExposition([
      { name: 'x_total', help: 'a "help"\nline', type: 'counter', samples: [{ labels: { a: 'q"uo\\te\nnl' }, value: 3 }] },
      { name: 'empty', help: 'none', type: 'gauge', samples: [] },
      { name: 'h', help: 'hist', type: 'histogram', samples: [{ labels: {}, buckets: [{ le: 1, count: 1 }, { le: 2, count: 3 }], count: 4, sum: 9.5 }] },
    ])
    expect(text).toBe(
      [
        '# HELP x_total a "help"\\nline',
        '# TYPE x_total counter',
        'x_total{a="q\\"uo\\\\te\\nnl"} 3',
        '# HELP h hist',
        '# TYPE h histogram',
        'h_bucket{le="1"} 1',
        'h_bucket{le="2"} 3',
        'h_bucket{le="+Inf"} 4',
        'h_sum 9.5',
        'h_count 4',
        '',
      ].join('\n'),
    )
    expect(formatExposition([])).toBe('')
  })

  it('rejects invalid metric and label names instead of writing a file Prometheus refuses', () => {
    expect(() => formatExposition([{ name: 'bad-name', help: '', type: 'gauge', samples: [{ labels: {}, value: 1 }] }])).toThrow(/metric name 'bad-name'/)
    expect(() => formatExposition([{ name: 'ok', help: '', type: 'gauge', samples: [{ labels: { 'bad-label': 1 }, value: 1 }] }])).toThrow(/label name 'bad-label'/)
  })

  it('turns provider counter names into metric names', () => {
    expect(snakeCase('packetsSent')).toBe('packets_sent')
    expect(snakeCase('naksReceived')).toBe('naks_received')
    expect(snakeCase('qp-not-ready')).toBe('qp_not_ready')
    expect(snakeCase('badIcrc')).toBe('bad_icrc')
  })
})

describe('collectMetrics / renderPrometheus', () => {
  it('exports per-session and per-QP counters, gauges, QoS and latency histograms', () => {
    const samples = parseExposition(renderPrometheus(fakeContext(), { labels: { instance: 'db-7' } }))
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

  it('exports the provider counters of devices and QPs through the optional SPI hooks', () => {
    const deviceMetrics: ProviderMetrics = {
      counters: { retransmits: 7, packetsSent: 100 },
      labeled: { naksReceived: { label: 'kind', values: { RNR: 2, PSN_SEQUENCE_ERROR: 1 } }, drops: { label: 'reason', values: { badIcrc: 4 } } },
    }
    const qpMetrics: ProviderMetrics = { counters: { retransmits: 3 }, labeled: { drops: { label: 'reason', values: { replay: 1 } } } }
    const text = renderPrometheus(fakeContext({ deviceMetrics, qpMetrics }))
    const samples = parseExposition(text)
    const dev = 'provider="fake",device="fake0"'
    expect(samples.get(`rdma_session_device_retransmits_total{${dev}}`)).toBe(7)
    expect(samples.get(`rdma_session_device_packets_sent_total{${dev}}`)).toBe(100)
    expect(samples.get(`rdma_session_device_naks_received_total{${dev},kind="RNR"}`)).toBe(2)
    expect(samples.get(`rdma_session_device_naks_received_total{${dev},kind="PSN_SEQUENCE_ERROR"}`)).toBe(1)
    expect(samples.get(`rdma_session_device_drops_total{${dev},reason="badIcrc"}`)).toBe(4)
    const q = `${dev},session="${'a'.repeat(32)}",remote="10.0.0.2:4791",qpn="257",class="latency"`
    expect(samples.get(`rdma_session_qp_wire_retransmits_total{${q}}`)).toBe(3)
    expect(samples.get(`rdma_session_qp_wire_drops_total{${q},reason="replay"}`)).toBe(1)
    expect(text).toContain('# TYPE rdma_session_device_drops_total counter')
    // A provider without the hooks exports core's metrics only.
    expect(renderPrometheus(fakeContext())).not.toMatch(/rdma_session_(device|qp_wire)_/)
  })

  it('merges several contexts into one family per metric, skips closed ones, and can leave out per-QP histograms', () => {
    const families = collectMetrics([fakeContext({ device: 'fake0' }), fakeContext({ device: 'fake1' }), fakeContext({ closed: true, device: 'gone' })], { qpHistograms: false })
    const sessions = families.find((f) => f.name === 'rdma_session_sessions')!
    expect(sessions.samples.map((s) => s.labels.device)).toEqual(['fake0', 'fake1'])
    expect(families.some((f) => f.name === 'rdma_session_qp_latency_microseconds')).toBe(false)
    expect(families.some((f) => f.name === 'rdma_session_session_latency_microseconds')).toBe(true)
    expect(new Set(families.map((f) => f.name)).size).toBe(families.length)
    parseExposition(formatExposition(families))
  })

  it('exports each listener\'s admission of unauthenticated connections: pool, refusals by reason, limits', () => {
    const admission: ServerAdmissionStats = {
      pending: 7, peakPending: 128, admitted: 900, completed: 40, earlyDropped: 500, evicted: 30, timedOut: 12, authenticatedConnections: 3, maxConnections: 256, refusedAtLimit: 2,
      limits: { maxPending: 128, maxPendingPerAddress: 16, earlyDropAt: 64, earlyDropRate: 0.3, handshakeTimeoutMs: 5000 },
    }
    const samples = parseExposition(renderPrometheus(fakeContext({ listeners: [{ url: 'ws://127.0.0.1:7471', admission }] })))
    const l = 'provider="fake",device="fake0",listener="ws://127.0.0.1:7471"'
    expect(samples.get(`rdma_session_control_pending_connections{${l}}`)).toBe(7)
    expect(samples.get(`rdma_session_control_pending_connections_peak{${l}}`)).toBe(128)
    expect(samples.get(`rdma_session_control_authenticated_connections{${l}}`)).toBe(3)
    expect(samples.get(`rdma_session_control_admitted_total{${l}}`)).toBe(900)
    expect(samples.get(`rdma_session_control_handshakes_completed_total{${l}}`)).toBe(40)
    expect(samples.get(`rdma_session_control_admission_refused_total{${l},reason="early_drop"}`)).toBe(500)
    expect(samples.get(`rdma_session_control_admission_refused_total{${l},reason="evicted"}`)).toBe(30)
    expect(samples.get(`rdma_session_control_admission_refused_total{${l},reason="handshake_timeout"}`)).toBe(12)
    expect(samples.get(`rdma_session_control_admission_refused_total{${l},reason="max_connections"}`)).toBe(2)
    expect(samples.get(`rdma_session_control_admission_limit{${l},limit="max_pending_per_address"}`)).toBe(16)
    expect(samples.get(`rdma_session_control_admission_limit{${l},limit="handshake_timeout_ms"}`)).toBe(5000)
    expect(samples.get(`rdma_session_control_admission_limit{${l},limit="max_connections"}`)).toBe(256)
    expect(renderPrometheus(fakeContext())).not.toMatch(/rdma_session_control_/)
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

describe('prometheusHandler', () => {
  it('serves the exposition with the Prometheus content type, HEAD without a body, and refuses POST', async () => {
    const server = createServer(prometheusHandler(() => [fakeContext()]))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`
    try {
      const r = await fetch(url)
      expect(r.status).toBe(200)
      expect(r.headers.get('content-type')).toBe(PROMETHEUS_CONTENT_TYPE)
      const body = await r.text()
      expect(body).toContain('rdma_session_session_qps{')
      parseExposition(body)
      const head = await fetch(url, { method: 'HEAD' })
      expect(head.status).toBe(200)
      expect(await head.text()).toBe('')
      expect((await fetch(url, { method: 'POST' })).status).toBe(405)
    } finally {
      await new Promise((r) => server.close(r))
    }
  })

  it('answers 500 with the reason when collecting fails', async () => {
    const broken = { ...fakeContext(), closed: false, provider: { name: 'fake' }, info: { name: 'x' }, device: { metrics: () => { throw new Error('device gone') } } } as unknown as Context
    const server = createServer(prometheusHandler(broken))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
      expect(r.status).toBe(500)
      expect(await r.text()).toContain('device gone')
    } finally {
      await new Promise((r) => server.close(r))
    }
  })
})
