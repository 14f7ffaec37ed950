/**
 * provider-verbs' rdma_cm (librdmacm) on the guest's kernel rxe (rxe2 on the --tap link), IPv4 and
 * IPv6: against rdma-core's rping in both roles (rping -v -V -C 4: data verified, clean
 * disconnect on both sides), four QPs over rdma_cm connections between two verbs contexts with
 * traffic on all of them and refusals in words, and against provider-softroce's connection manager
 * on the host (both roles, rping's protocol). The guest side is test/cm/guest-cm-peer.ts (bundled
 * here); the softroce side is provider-softroce's rping interop child. Needs root, QEMU, perl, the
 * built addon and the built packages; RDMA_SESSION_RXE_VM=off skips it.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, startGuest, type Guest } from '../../../tools/rxe-vm/index.mjs'
import { expectPart, guestResults, guestSkip, pkg, repo } from './guest-env.js'
import { pingData } from '../../provider-softroce/test/cm/rping-peer.js'
import { roceLauncherArgs } from '../../provider-softroce/test/host-roce-launcher.js'

const softroce = join(repo, 'packages', 'provider-softroce')
const needs = [`${pkg}dist/index.js`, `${softroce}/dist/index.js`]
const COUNT = 4

const skipWhy = guestSkip('provider-verbs rdma_cm in the rxe guest', needs, 'libibverbs-dev and librdmacm-dev')

interface Rping { pings: number; verified: number; lines: string[]; disconnect: string; connectMs?: number; error?: string }
interface Run { code: number | null; out: string }
interface Part { part: string; error?: string; stack?: string; ms: number; [k: string]: unknown }

describe.skipIf(Boolean(skipWhy))('provider-verbs rdma_cm on kernel rxe (rxe-vm guest, rxe2 over the tap link)', () => {
  let guest: Guest | undefined
  let console_ = ''
  let results = new Map<string, Part>()
  const softroceRuns = new Map<string, { result: Rping }>()
  const softroceErrors: string[] = []

  beforeAll(async () => {
    await ensureBuilt()
    const { build } = await import('tsup')
    const common = { format: ['esm'] as ['esm'], platform: 'node' as const, target: 'node20', dts: false, sourcemap: false, silent: true, config: false, splitting: false, clean: false, outExtension: () => ({ js: '.mjs' }) }
    // Same depth as test/cm/, so the guest script's ../../dist/index.js is the package's build.
    const verbsOut = join(pkg, 'node_modules', '.verbs-cm')
    mkdirSync(verbsOut, { recursive: true })
    await build({ ...common, entry: { 'guest-cm-peer': join(pkg, 'test', 'cm', 'guest-cm-peer.ts') }, outDir: verbsOut, external: ['@rdma-session/core', /dist\/index\.js$/] })
    const softroceOut = join(softroce, 'node_modules', '.softroce-interop')
    mkdirSync(softroceOut, { recursive: true })
    await build({ ...common, entry: { 'rping-child-for-verbs': join(softroce, 'test', 'cm', 'interop', 'rping-child.ts') }, outDir: softroceOut, external: ['@rdma-session/core'] })
    const child = join(softroceOut, 'rping-child-for-verbs.mjs')

    const runSoftroce = async (fam: 4 | 6, role: 'client' | 'server', port: number): Promise<void> => {
      const args = roceLauncherArgs(fam, child, String(fam), role, String(port), String(COUNT))
      const { code, stdout, stderr } = await guest!.run('perl', args, { timeoutMs: 240_000 })
      const line = stdout.trim().split('\n').pop() ?? ''
      if (code !== 0 || !line.startsWith('{')) return void softroceErrors.push(`softroce ${role} IPv${fam} exit ${code}:\n${stdout}\n${stderr}`)
      softroceRuns.set(`${role}-v${fam}`, JSON.parse(line) as { result: Rping })
    }
    const started = new Set<string>()
    let chain = Promise.resolve()
    guest = await startGuest({
      command: 'cd packages/provider-verbs && node node_modules/.verbs-cm/guest-cm-peer.mjs',
      share: repo,
      node: true,
      timeoutMs: 1_200_000,
      onOutput: (text) => {
        console_ += text
        for (const fam of [4, 6] as const) {
          const marker = `CM-CROSS-READY-v${fam}`
          if (!started.has(marker) && console_.includes(marker)) {
            started.add(marker)
            // softroce's rping client to the verbs listener, then softroce's rping server for the verbs client.
            chain = chain.then(() => runSoftroce(fam, 'client', 7520 + fam)).then(() => runSoftroce(fam, 'server', 7530 + fam))
          }
        }
      },
    })
    const exit = await guest.exited
    await chain
    results = guestResults<Part>(exit.output)
    console.log(`rdma_cm guest run: exit ${exit.code}; parts ${[...results.keys()].join(', ')}`)
  }, 1_500_000)

  afterAll(async () => {
    await guest?.kill()
  })

  const get = (name: string): Part => expectPart(results, name, console_.slice(-4000))

  it('refuses bad input with ERR_INVALID_ARGUMENT before anything reaches rdma_cm', () => {
    const r = get('bad-input') as Part & { codes: string[] }
    expect(r.codes).toHaveLength(3)
    for (const c of r.codes) expect(c).toMatch(/^ERR_INVALID_ARGUMENT: /)
    expect(r.codes[2]).toContain('at most 56 bytes')
  })

  for (const fam of [4, 6] as const) {
    it(`IPv${fam}: rping -s in the guest, provider-verbs connects as client: ${COUNT} pings verified, clean disconnect on both sides`, () => {
      const r = get(`rping-s-v${fam}`) as Part & { result: Rping; rping: Run }
      console.log(`[verbs rdma_cm] IPv${fam} client of rping -s: ${r.ms} ms`)
      expect(r.result).toMatchObject({ pings: COUNT, verified: COUNT, disconnect: 'local' })
      expect(r.rping.code, r.rping.out).toBe(0)
      for (let i = 0; i < COUNT; i++) expect(r.rping.out).toContain(`server ping data: ${pingData(i, 64).subarray(0, 63).toString('latin1')}`)
      expect(r.rping.out).toContain('server DISCONNECT EVENT')
    })

    it(`IPv${fam}: provider-verbs listens, rping -c in the guest connects: ${COUNT} pings verified, clean disconnect on both sides`, () => {
      const r = get(`rping-c-v${fam}`) as Part & { result: Rping; rping: Run; expected: string[] }
      console.log(`[verbs rdma_cm] IPv${fam} server for rping -c: ${r.ms} ms`)
      expect(r.result).toMatchObject({ pings: COUNT, disconnect: 'remote' })
      expect(r.result.lines[0]).toBe(`server ping data: ${pingData(0, 64).subarray(0, 63).toString('latin1')}`)
      expect(r.rping.code, r.rping.out).toBe(0)
      for (const line of r.expected) expect(r.rping.out).toContain(line)
    })

    it(`IPv${fam}: four QPs over rdma_cm between two verbs contexts: private data, WRITE/READ/SEND/FETCH_AND_ADD on all at once, stats, refusals in words, disconnect from either side`, () => {
      const r = get(`qps-v${fam}`) as Part & {
        requests: string[]; repData: string[]; consumerRej: string; noListener: string; verified: boolean[]; messages: string[]; ends: string[]
        stats: { qpn: number; bytesSent: number; bytesReceived: number; opsCompleted: number; errors: number }[]; qpsWhileConnected: number; connectionsLeft: number
      }
      console.log(`[verbs rdma_cm] IPv${fam} four QPs: ${r.ms} ms; consumer REJ: ${r.consumerRej}; no listener: ${r.noListener}`)
      expect(r.requests).toEqual(['please reject', 'qp-0', 'qp-1', 'qp-2', 'qp-3'])
      expect(r.repData).toEqual(['welcome qp-0', 'welcome qp-1', 'welcome qp-2', 'welcome qp-3'])
      expect(r.consumerRej).toMatch(/^ERR_CONNECTION_REFUSED: rdma_cm: RDMA_CM_EVENT_REJECTED status 28 \(consumer defined/)
      expect(r.consumerRej).toMatch(/privateData not you$/)
      expect(r.noListener).toMatch(/^ERR_CONNECTION_REFUSED: rdma_cm: RDMA_CM_EVENT_REJECTED status 8 \(invalid service ID/)
      expect(r.verified).toEqual([true, true, true, true])
      expect(r.messages).toEqual([0, 1, 2, 3].map((i) => `hello from ${i}`.padEnd(16, '.')))
      expect(new Set(r.stats.map((s) => s.qpn)).size).toBe(4)
      for (const s of r.stats) {
        expect(s.errors).toBe(0)
        expect(s.opsCompleted).toBe(4)
        expect(s.bytesSent).toBe(4096 + 8 + 16)
        expect(s.bytesReceived).toBe(4096)
      }
      expect(r.qpsWhileConnected).toBe(4)
      expect(r.ends).toEqual(['local/remote', 'remote/local', 'local/remote', 'remote/local'])
      expect(r.connectionsLeft).toBe(0)
    })

    it(`IPv${fam}: provider-verbs (guest) and provider-softroce (host) connect to each other through rdma_cm, both roles`, () => {
      expect(softroceErrors).toEqual([])
      const r = get(`cross-v${fam}`) as Part & { served: Rping; client: Rping }
      console.log(`[verbs rdma_cm] IPv${fam} verbs <-> softroce: ${r.ms} ms (softroce client connect ${Math.round(softroceRuns.get(`client-v${fam}`)?.result.connectMs ?? -1)} ms, verbs client connect ${Math.round(r.client.connectMs ?? -1)} ms)`)
      expect(r.served).toMatchObject({ pings: COUNT, disconnect: 'remote' })
      expect(r.client).toMatchObject({ pings: COUNT, verified: COUNT, disconnect: 'local' })
      expect(softroceRuns.get(`client-v${fam}`)?.result).toMatchObject({ pings: COUNT, verified: COUNT, disconnect: 'local' })
      expect(softroceRuns.get(`server-v${fam}`)?.result).toMatchObject({ pings: COUNT, disconnect: 'remote' })
      for (let i = 0; i < COUNT; i++) expect(r.served.lines[i]).toBe(`server ping data: ${pingData(i, 64).subarray(0, 63).toString('latin1')}`)
    })
  }
})
