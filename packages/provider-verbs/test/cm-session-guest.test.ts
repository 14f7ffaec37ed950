/**
 * Core sessions over rdma_cm on provider-verbs (core's `ctx.listen({ cm })` and
 * `ctx.connect('rdma-cm://…', { qps })` through the provider's createConnectionManager hook), on
 * the guest's kernel rxe (rxe2 on the --tap link), IPv4 and IPv6: two verbs contexts in the guest,
 * and verbs in the guest with provider-softroce on the host in both roles. Every QP of each
 * session moves data both ways (SEND and WRITE), wrong joins are refused with
 * ERR_SESSION_NOT_FOUND, a QP joins the session by ID and token over rdma_cm, and either side's
 * close ends the session on the other. The guest side is test/cm/guest-cm-session.ts, the host
 * side test/cm/softroce-session-child.ts (both bundled here). Needs root, QEMU, perl, the built
 * addon and packages; RDMA_SESSION_RXE_VM=off skips it.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, startGuest, type Guest } from '../../../tools/rxe-vm/index.mjs'
import { roceSocketArgs } from '../../../tools/rxe-vm/roce-socket.mjs'
import { expectPart, guestResults, guestSkip, pkg, repo } from './guest-env.js'
import type { ConnectReport, ListenReport, QpCheck } from './cm/session-exchange.js'

const needs = [`${pkg}dist/index.js`, `${repo}packages/provider-softroce/dist/index.js`]
const N = 3

const skipWhy = guestSkip('core sessions over provider-verbs rdma_cm in the rxe guest', needs, 'libibverbs-dev and librdmacm-dev')

interface Part { part: string; error?: string; stack?: string; ms: number; [k: string]: unknown }

const labels = (who: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${who}-${i}`)

/** Every QP's check passed, and the peer labels are exactly the other side's. */
function expectChecks(checks: readonly QpCheck[], me: string, peer: string): void {
  expect(checks.map((c) => c.sent).sort()).toEqual(labels(me, checks.length))
  expect(checks.map((c) => c.peer).sort()).toEqual(labels(peer, checks.length))
  for (const c of checks) expect(c.written, `${c.sent}: the WRITE of ${c.peer} did not land`).toBe(true)
}

function expectConnect(r: ConnectReport, me: string, peer: string, closedBy: 'local' | 'remote', trafficClass = 0): void {
  expect(r.qps).toBe(N)
  expect(r.trafficClasses).toEqual(Array.from({ length: N + 1 }, () => trafficClass))
  expectChecks([...r.checks, r.added], me, peer)
  expect(r.refusals).toEqual(['ERR_SESSION_NOT_FOUND/session-not-found', 'ERR_SESSION_NOT_FOUND/session-not-found'])
  expect(r.sizeAfterAdd).toBe(N + 1)
  expect(r.closedBy).toBe(closedBy)
  if (closedBy === 'remote') expect(r.closeReason).toMatch(/rdma_cm peer/)
  expect(r.qpsLeft).toBe(0)
}

function expectListen(r: ListenReport, me: string, peer: string, closedBy: 'local' | 'remote', sessionId: string, trafficClass = 0): void {
  expect(r.sessionId).toBe(sessionId)
  expect(r.trafficClasses).toEqual(Array.from({ length: N + 1 }, () => trafficClass))
  expectChecks(r.checks, me, peer)
  expect(r.refused.SESSION_NOT_FOUND).toBe(2)
  expect(r.closedBy).toBe(closedBy)
  if (closedBy === 'remote') expect(r.closeReason).toMatch(/rdma_cm peer/)
  expect(r.qpsLeft).toBe(0)
}

describe.skipIf(Boolean(skipWhy))('core sessions over provider-verbs rdma_cm on kernel rxe (rxe-vm guest, rxe2 over the tap link)', () => {
  let guest: Guest | undefined
  let console_ = ''
  let results = new Map<string, Part>()
  const host = new Map<string, { report?: ConnectReport & ListenReport; error?: string }>()

  beforeAll(async () => {
    await ensureBuilt()
    const { build } = await import('tsup')
    const common = { format: ['esm'] as ['esm'], platform: 'node' as const, target: 'node20', dts: false, sourcemap: false, silent: true, config: false, splitting: false, clean: false, outExtension: () => ({ js: '.mjs' }) }
    // Same depth as test/cm/, so the guest script's ../../dist/index.js is the package's build.
    const out = join(pkg, 'node_modules', '.verbs-cm')
    mkdirSync(out, { recursive: true })
    await build({ ...common, entry: { 'guest-cm-session': join(pkg, 'test', 'cm', 'guest-cm-session.ts') }, outDir: out, external: ['@rdma-session/core', /dist\/index\.js$/] })
    await build({ ...common, entry: { 'softroce-session-child': join(pkg, 'test', 'cm', 'softroce-session-child.ts') }, outDir: out, external: ['@rdma-session/core'] })
    const child = join(out, 'softroce-session-child.mjs')

    const runHost = async (fam: 4 | 6, role: 'connect' | 'listen', port: number, closer: 'local' | 'remote'): Promise<void> => {
      const args = roceSocketArgs(fam, child, [String(fam), role, String(port), String(N), closer])
      const { code, stdout, stderr } = await guest!.run('perl', args, { timeoutMs: 240_000 })
      const line = stdout.trim().split('\n').pop() ?? ''
      host.set(`${role}-v${fam}`, code === 0 && line.startsWith('{') ? JSON.parse(line) : { error: `softroce ${role} IPv${fam} exit ${code}:\n${stdout}\n${stderr}` })
    }
    const started = new Set<string>()
    let chain = Promise.resolve()
    guest = await startGuest({
      command: 'cd packages/provider-verbs && node node_modules/.verbs-cm/guest-cm-session.mjs',
      share: repo,
      node: true,
      timeoutMs: 1_200_000,
      onOutput: (text) => {
        console_ += text
        for (const fam of [4, 6] as const) {
          for (const [marker, role, port, closer] of [[`CM-SESSION-LISTENING-v${fam}`, 'connect', 7570 + fam, 'remote'], [`CM-SESSION-CONNECT-v${fam}`, 'listen', 7580 + fam, 'remote']] as const) {
            if (started.has(marker) || !console_.includes(marker)) continue
            started.add(marker)
            chain = chain.then(() => runHost(fam, role, port, closer))
          }
        }
      },
    })
    const exit = await guest.exited
    await chain
    results = guestResults<Part>(exit.output)
    console.log(`rdma_cm session guest run: exit ${exit.code}; parts ${[...results.keys()].join(', ')}`)
  }, 1_500_000)

  afterAll(async () => {
    await guest?.kill()
  })

  const get = (name: string): Part => expectPart(results, name, console_.slice(-4000))

  function hostReport(key: string): ConnectReport & ListenReport {
    const h = host.get(key)
    expect(h, `the softroce child (${key}) did not run`).toBeDefined()
    expect(h!.error, h!.error).toBeUndefined()
    return h!.report!
  }

  for (const fam of [4, 6] as const) {
    it(`IPv${fam}: two verbs contexts: a session of ${N} QPs over rdma_cm, data on every QP, wrong joins refused, a QP added by ID, closed from either side`, () => {
      const r = get(`session-v${fam}`) as Part & { listen: ListenReport; connect: ConnectReport; listen2: ListenReport; connect2: ConnectReport; sessionsLeft: number }
      console.log(`[verbs rdma_cm sessions] IPv${fam} verbs <-> verbs: ${r.ms} ms`)
      // DSCP 26, ECN 1 on every QP of both sides: the listening side inherits the session's traffic class.
      expectConnect(r.connect, 'connector', 'listener', 'local', (26 << 2) | 1)
      expectListen(r.listen, 'listener', 'connector', 'remote', r.connect.sessionId, (26 << 2) | 1)
      expect(r.listen.remote).toBe(fam === 4 ? '10.77.0.2' : 'fd77::2')
      expectConnect(r.connect2, 'connector', 'listener', 'remote')
      expectListen(r.listen2, 'listener', 'connector', 'local', r.connect2.sessionId)
      expect(r.sessionsLeft).toBe(0)
    })

    it(`IPv${fam}: a plain rdma_cm peer gets a lone QP from ctx.listen({ cm }); the listener's prepare hook posted the receive of its first SEND`, () => {
      const r = get(`plain-v${fam}`) as Part & { prepared: number; text: string; peerData: string; endedBy: string; sessions: number }
      expect(r).toMatchObject({ prepared: 1, text: 'first send', peerData: 'plain peer', endedBy: 'remote', sessions: 0 })
    })

    it(`IPv${fam}: verbs (guest) listens, softroce (host) connects a session of ${N} QPs; verbs closes it`, () => {
      const r = get(`cross-listen-v${fam}`) as Part & { listen: ListenReport }
      const h = hostReport(`connect-v${fam}`)
      console.log(`[verbs rdma_cm sessions] IPv${fam} softroce -> verbs: ${r.ms} ms`)
      expectConnect(h, 'softroce', 'verbs', 'remote')
      expectListen(r.listen, 'verbs', 'softroce', 'local', h.sessionId)
      expect(r.listen.remote).toBe(fam === 4 ? '10.77.0.1' : 'fd77::1')
    })

    it(`IPv${fam}: softroce (host) listens, verbs (guest) connects a session of ${N} QPs; verbs closes it`, () => {
      const r = get(`cross-connect-v${fam}`) as Part & { connect: ConnectReport }
      const h = hostReport(`listen-v${fam}`)
      console.log(`[verbs rdma_cm sessions] IPv${fam} verbs -> softroce: ${r.ms} ms`)
      expectConnect(r.connect, 'verbs', 'softroce', 'local')
      expectListen(h, 'softroce', 'verbs', 'remote', r.connect.sessionId)
      expect(h.remote).toBe(fam === 4 ? '10.77.0.2' : 'fd77::2')
    })
  }
})
