/** A ready /metrics endpoint for applications without a prom-client registry of their own. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Registry } from 'prom-client'
import type { MetricsSource, PrometheusOptions } from './families.js'
import { RdmaSessionCollector } from './prom-client-collector.js'

/** The exposition of the contexts' metrics (Prometheus text format 0.0.4), through a registry of its own. */
export async function renderPrometheus(contexts: MetricsSource, options: PrometheusOptions = {}): Promise<string> {
  const registry = new Registry()
  new RdmaSessionCollector(contexts, options).register(registry)
  return await registry.metrics()
}

/**
 * A node:http request handler serving the metrics at any path, GET and HEAD:
 * `http.createServer(prometheusHandler(() => [ctx])).listen(9464)`. It keeps one registry and
 * syncs its collector before each scrape, so provider counters appear in the first one.
 */
export function prometheusHandler(contexts: MetricsSource, options: PrometheusOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const registry = new Registry()
  // Registered at the first scrape: `contexts` may name contexts that do not exist yet.
  let collector: RdmaSessionCollector | null = null
  const scrape = async (): Promise<string> => {
    if (collector === null) collector = new RdmaSessionCollector(contexts, options).register(registry)
    else collector.sync()
    return await registry.metrics()
  }
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    scrape().then(
      (body) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(body) })
        res.end(req.method === 'HEAD' ? undefined : body)
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${(err as Error).message}\n`)
      },
    )
  }
}
