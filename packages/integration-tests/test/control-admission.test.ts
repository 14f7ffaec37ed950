/**
 * Control-plane admission under a handshake flood: 1,000 hostile sockets from eight loopback
 * source addresses (127.0.0.2 … 127.0.0.9) connect and stall, trickle bytes or send garbage, and
 * reconnect whenever the server closes them, while a legitimate client from 127.0.0.1 dials, opens
 * sessions and moves data. The legitimate client must never fail; the pending pool and the
 * server's memory stay bounded. The same for the session daemon's Unix socket.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { SessionDaemon, connectDaemon, type Context, type ServerAdmissionStats } from '@rdma-session/core'
import { renderPrometheus } from '@rdma-session/core/prometheus'
import { PSK, exposeBuffer, mockContexts, waitFor } from './helpers.js'
import { JsonProcess, stopAll } from './processes.js'

const auth = { psk: PSK }
const HOSTILE_SOURCES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`)
const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  await stopAll()
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** Samples this process's RSS and V8 heap every 100 ms until stopped; reports the peaks. */
function memorySampler(): { stop(): { rss: number; heapUsed: number } } {
  const peak = { rss: 0, heapUsed: 0 }
  const sample = (): void => {
    const m = process.memoryUsage()
    peak.rss = Math.max(peak.rss, m.rss)
    peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed)
  }
  sample()
  const t = setInterval(sample, 100)
  return {
    stop: () => {
      clearInterval(t)
      sample()
      return peak
    },
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

const MiB = 1024 * 1024
/** Dials of the legitimate client under the flood (each opens a session and moves 4 KiB each way). */
const ROUNDS = 100
const describeAdmission = (a: ServerAdmissionStats): string => JSON.stringify({ ...a, limits: undefined })

describe('control-plane admission under a handshake flood', () => {
  it('1,000 hostile sockets from 127.0.0.2-9: the legitimate client never fails, pending stays within its budget, memory stays bounded', async () => {
    const { ctxs } = await mockContexts(2)
    const [a, b] = ctxs as [Context, Context]
    cleanups.push(() => b.close(), () => a.close())
    exposeBuffer(a, 1 << 16)
    const server = await a.listen({ port: 0, auth })
    const limits = server.admission.limits
    const before = process.memoryUsage()
    const memory = memorySampler()

    const swarm = new JsonProcess('node', ['hostile-swarm.mjs', 'tcp', '127.0.0.1', String(server.port), '1000', HOSTILE_SOURCES.join(',')])
    await swarm.wait('ready', () => true, 120_000)
    // The attack is in force: the pool is past the early-drop mark and has turned connections away.
    // (Not "peak == maxPending": as the pool nears its budget early drop refuses nearly every newcomer
    // and handshake deadlines free slots, so a loaded host saw the peak stop at 127 of 128.)
    await waitFor(() => server.admission.peakPending >= limits.earlyDropAt && server.admission.evicted + server.admission.earlyDropped > 0, 60_000, () => `the flood to fill the pending pool (${describeAdmission(server.admission)})`)

    const dialMs: number[] = []
    const srcBytes = Buffer.alloc(4096)
    const backBytes = Buffer.alloc(4096)
    const src = b.registerMemory(srcBytes, { access: ['local-write'] })
    const back = b.registerMemory(backBytes, { access: ['local-write'] })
    for (let round = 0; round < ROUNDS; round++) {
      const t0 = performance.now()
      // No retry of ERR_BUSY: from an address with nothing pending, admission never refuses.
      const channel = await b.dial(server.url, { auth, busyRetryMs: 0 })
      dialMs.push(performance.now() - t0)
      const session = await b.sessions.create({ peer: channel, qps: [{}] })
      const region = session.remoteRegions.get('buf')!
      srcBytes.fill(round + 1)
      await session.qps[0]!.write(src.slice(0, 4096), region)
      await session.qps[0]!.read(back.slice(0, 4096), region)
      expect(backBytes.every((x) => x === round + 1), `round ${round}: the bytes read back`).toBe(true)
      await session.close()
      channel.close()
    }

    const swarmStats = await swarm.ask('stats', 'stats')
    const peak = memory.stop()
    const admission = server.admission
    const sorted = [...dialMs].sort((x, y) => x - y)
    const report = {
      dials: dialMs.length,
      dialMsP50: Math.round(percentile(sorted, 50)),
      dialMsP99: Math.round(percentile(sorted, 99)),
      dialMsMax: Math.round(sorted.at(-1)!),
      rssGrowthMiB: Math.round((peak.rss - before.rss) / MiB),
      heapGrowthMiB: Math.round((peak.heapUsed - before.heapUsed) / MiB),
      admission: { ...admission, limits: undefined },
      swarm: swarmStats.behaviours,
    }
    console.log(`admission under flood: ${JSON.stringify(report)}`)

    expect(dialMs).toHaveLength(ROUNDS)
    // Never more pending than the budget, and the flood met it: connections were turned away or closed.
    expect(admission.peakPending).toBeLessThanOrEqual(limits.maxPending)
    expect(admission.evicted + admission.earlyDropped + admission.timedOut).toBeGreaterThan(0)
    // Every kind of hostile socket was closed by the server at least once (none holds a slot for good).
    for (const [kind, s] of Object.entries(swarmStats.behaviours as Record<string, { opened: number; closedByServer: number }>)) {
      expect(s.closedByServer, `${kind} sockets closed by the server`).toBeGreaterThan(0)
    }
    // Generous bounds: the pool holds at most maxPending sockets however long the flood lasts.
    expect(peak.rss - before.rss).toBeLessThan(384 * MiB)
    expect(peak.heapUsed - before.heapUsed).toBeLessThan(192 * MiB)
    const exposition = await renderPrometheus(a)
    expect(exposition).toMatch(/rdma_session_control_admission_refused_total\{[^}]*reason="evicted"[^}]*\} [1-9]/)
    expect(exposition).toMatch(/rdma_session_control_admission_limit\{[^}]*limit="max_pending"[^}]*\} 128\n/)

    await swarm.ask('stop', 'stopped')
    await waitFor(() => server.admission.pending === 0, limits.handshakeTimeoutMs + 15_000, () => `the pool to drain once the flood stopped (${describeAdmission(server.admission)})`)
    expect(a.handles).toMatchObject({ qps: 0, sessions: 0 })
  }, 300_000)

  it('the session daemon on its Unix socket: a flood of stalled and garbage connections does not keep a client out', async () => {
    const { ctxs } = await mockContexts(1)
    const [c] = ctxs as [Context]
    cleanups.push(() => c.close())
    const dir = mkdtempSync(join(tmpdir(), 'rdma-admit-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const token = randomBytes(32).toString('hex')
    const daemon = await SessionDaemon.start({ socketPath: join(dir, 'd.sock'), token })
    const { maxPending } = daemon.admission.limits
    cleanups.push(() => daemon.close())

    const swarm = new JsonProcess('node', ['hostile-swarm.mjs', 'unix', daemon.socketPath, '300'])
    await swarm.wait('ready', () => true, 120_000)
    await waitFor(() => daemon.admission.peakPending === maxPending && daemon.admission.evicted > 0, 60_000, () => `the flood to fill the daemon's pending pool (${describeAdmission(daemon.admission)})`)

    // A Unix socket's peers have no address to budget: a client's connection may be closed to make room once
    // maxPending newer ones have come, and then it retries ERR_BUSY (busyRetryMs).
    for (let round = 0; round < 20; round++) {
      const client = await connectDaemon(c, { socketPath: daemon.socketPath, token })
      expect(await client.list()).toEqual([])
      await client.close()
    }
    expect(daemon.admission.peakPending).toBeLessThanOrEqual(maxPending)
    expect(daemon.admission.completed).toBeGreaterThanOrEqual(20)
    await swarm.ask('stop', 'stopped')
    await waitFor(() => daemon.admission.pending === 0, daemon.admission.limits.handshakeTimeoutMs + 15_000, () => `the daemon's pool to drain (${describeAdmission(daemon.admission)})`)
  }, 300_000)
})
