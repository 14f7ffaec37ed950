/**
 * Across providers: provider-verbs on the guest's kernel rxe (rxe2, on the --tap link) and
 * provider-softroce on the host inside the guest's netns, connected through the ws control plane
 * over that link. Every op (WRITE, WRITE_WITH_IMM, READ, SEND, FETCH_AND_ADD, CMP_AND_SWP) both
 * ways, a session with several QPs (two at creation, two added by ID), striping, the refusal of a
 * required encrypted session, over IPv4 (rxe2 GID 1) and IPv6 (GID 2) GIDs. Needs root, QEMU,
 * perl, the built addon and the built packages; RDMA_SESSION_RXE_VM=off skips it.
 */
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, startGuest, type Guest } from '../../../tools/rxe-vm/index.mjs'
import { guestSkip, pkg, repo } from './guest-env.js'
import { roceLauncherArgs } from '../../provider-softroce/test/host-roce-launcher.js'

const side = fileURLToPath(new URL('./cross/softroce-side.mjs', import.meta.url))
const needs = [`${pkg}dist/index.js`, `${repo}packages/provider-softroce/dist/index.js`]

const skipWhy = guestSkip('provider-verbs <-> provider-softroce (guest)', needs, 'libibverbs-dev')

interface SideResult { checks: { name: string; ok: boolean; detail?: string }[] }

describe.skipIf(Boolean(skipWhy))('provider-verbs (guest rxe2) <-> provider-softroce (host, netns) over the ws control plane', () => {
  let guest: Guest | undefined
  let console_ = ''

  beforeAll(async () => {
    await ensureBuilt()
    let ready: () => void = () => {}
    const up = new Promise<void>((resolve) => (ready = resolve))
    guest = await startGuest({
      command: 'cd packages/provider-verbs && node guest/cross-verbs-peer.mjs',
      share: repo,
      node: true,
      timeoutMs: 600_000,
      onOutput: (text) => {
        console_ += text
        if (console_.includes('CROSS-READY')) ready()
      },
    })
    await Promise.race([up, guest.exited.then((e) => { throw new Error(`guest ended (exit ${e.code}) before the verbs peer was ready:\n${e.output.slice(-3000)}`) })])
  }, 300_000)

  afterAll(async () => {
    await guest?.kill()
  })

  async function runSide(fam: 4 | 6): Promise<SideResult> {
    const args = roceLauncherArgs(fam, side, String(fam))
    const p = guest!.spawn('perl', args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: pkg })
    let out = ''
    let err = ''
    p.stdout!.on('data', (d: Buffer) => (out += d))
    p.stderr!.on('data', (d: Buffer) => (err += d))
    const code = await new Promise<number | null>((resolve) => p.on('close', resolve))
    const line = out.trim().split('\n').pop() ?? ''
    if (code !== 0 || !line.startsWith('{')) throw new Error(`softroce side (IPv${fam}) exit ${code}:\n${out}\n${err}\nguest console:\n${console_.slice(-2000)}`)
    return JSON.parse(line) as SideResult
  }

  for (const fam of [4, 6] as const) {
    it(`IPv${fam} GIDs: a 4-QP session, every op both ways, striping, encryption refused`, async () => {
      const t0 = Date.now()
      const r = await runSide(fam)
      console.log(`[provider-verbs] cross IPv${fam}: ${r.checks.filter((c) => c.ok).length}/${r.checks.length} checks in ${Date.now() - t0} ms`)
      expect(r.checks.filter((c) => !c.ok), JSON.stringify(r.checks, null, 1)).toEqual([])
      expect(r.checks.length).toBe(18)
    }, 240_000)
  }
})
