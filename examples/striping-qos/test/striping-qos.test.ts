import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const cwd = new URL('..', import.meta.url).pathname
/** '3.42 µs', '2.05 ms', '1.20 s' (core's formatMicros) in µs. */
const micros = (text: string): number => parseFloat(text) * (text.endsWith(' ms') ? 1e3 : text.endsWith(' s') ? 1e6 : 1)

function parse(stdout: string) {
  const line = (re: RegExp) => {
    const m = re.exec(stdout)
    expect(m, `output lacks ${re}:\n${stdout}`).not.toBeNull()
    return m!
  }
  const isolated = line(/latency QP, bulk flooding: +p50 ([\d.]+ (?:s|ms|µs)), p99 ([\d.]+ (?:s|ms|µs))/)
  const shared = line(/on a bulk QP \(no isolation\), flooding: p50 ([\d.]+ (?:s|ms|µs)), p99 ([\d.]+ (?:s|ms|µs))/)
  return { isolatedP50: micros(isolated[1]!), sharedP50: micros(shared[1]!), line }
}

describe('striping-qos example', () => {
  it('on the mock: bulk is striped over both bulk QPs and the latency QP stays isolated from it', async () => {
    const { stdout } = await run(process.execPath, ['striping-qos.mjs'], { cwd, env: { ...process.env, RDMA_SESSION_PROVIDER: '' } })
    const { isolatedP50, sharedP50, line } = parse(stdout)
    line(/provider: mock, link 1 Gbps; qos scheduling: true/)
    line(/session [0-9a-f]{32}: 3 QPs \(\d+:latency\/w1, \d+:bulk\/w4, \d+:bulk\/w4\)/)
    const bulk = line(/bulk: (\d+) MiB striped over 2 bulk QPs at ([\d.]+) Gbps/)
    expect(Number(bulk[1])).toBeGreaterThan(0)
    expect(Number(bulk[2])).toBeLessThanOrEqual(1.05) // never above the 1 Gbps link
    const chunks = line(/bulk chunks per QP: (\d+) and (\d+)/)
    expect(Number(chunks[1])).toBeGreaterThan(0)
    expect(Number(chunks[2])).toBeGreaterThan(0)
    line(/session: \d+ ops, 0 errors/)
    // The median is robust against a loaded CI machine; the p99 is printed, not asserted.
    expect(isolatedP50 * 2, `latency QP p50 ${isolatedP50} µs vs shared ${sharedP50} µs`).toBeLessThan(sharedP50)
    expect(stdout).toMatch(/closed/)
  })

  it('runs on softroce with RDMA_SESSION_PROVIDER=softroce', async () => {
    const { stdout } = await run(process.execPath, ['striping-qos.mjs'], { cwd, env: { ...process.env, RDMA_SESSION_PROVIDER: 'softroce' } })
    const { line } = parse(stdout)
    line(/provider: softroce; qos scheduling: true/)
    line(/bulk: \d+ MiB striped over 2 bulk QPs/)
    line(/session: \d+ ops, 0 errors/)
    expect(stdout).toMatch(/closed/)
  })
})
