/**
 * softroce runs inside the rxe-vm guest (Debian 12's 6.1 kernel under QEMU TCG) with the host's
 * node and the host-built packages and socket helper, shared over 9p (tools/rxe-vm `node: true`,
 * `share`): two node processes in the guest, one RC QP each over the guest's loopback, move 1 MiB
 * by WRITE, an unaligned WRITE and a READ back, byte for byte (write-pair.mjs). The guest kernel
 * takes UDP GSO and GRO, and its (emulated) CPU has PCLMULQDQ, so the stack there must choose the
 * batched socket path and the native ICRC engine, as `pnpm bench guest-vs-rxe` assumes.
 *
 * Needs root, /dev/net/tun, the rxe-vm build (tools/rxe-vm/build.sh) and `pnpm build`; skipped
 * otherwise with the reason printed (a failure under CI).
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { guestSupport, startGuest, type Guest } from '../../../../tools/rxe-vm/index.mjs'
import { environmentSkip } from '../../../../tools/test-env.mjs'

const repo = fileURLToPath(new URL('../../../../', import.meta.url))
const built = ['core', 'provider-interface', 'rc-engine', 'provider-softroce'].map((p) => `${repo}packages/${p}/dist/index.js`)
const missing = built.filter((f) => !existsSync(f))
const why = environmentSkip('softroce inside the rxe-vm guest', guestSupport() ?? (missing.length > 0 ? `not built: ${missing.join(', ')} (pnpm build)` : null))

interface GuestResult {
  checks: { name: string; ok: boolean; detail?: string }[]
  ms: number
  helper: string
  icrcEngine: string
  batchedIo: { send: string; receive: string } | null
  retransmits: number
  timeouts: number
}

describe.skipIf(Boolean(why))('softroce inside the rxe-vm guest', () => {
  let guest: Guest | undefined

  afterAll(async () => {
    await guest?.kill()
  })

  it('two node processes in the guest: 1 MiB WRITE, unaligned WRITE and READ, byte-exact, on the batched path with native ICRCs', async () => {
    const t0 = Date.now()
    // module loading over 9p is slow under TCG (about a minute per process on a loaded host)
    guest = await startGuest({ command: 'node packages/provider-softroce/test/guest/write-pair.mjs', share: repo, node: true, tap: false, timeoutMs: 900_000 })
    const { code, output } = await guest.exited
    const line = output.split('\n').find((l) => l.startsWith('GUEST-RESULT '))
    expect(code, output.slice(-4000)).toBe(0)
    expect(line, output.slice(-4000)).toBeDefined()
    const r = JSON.parse(line!.slice('GUEST-RESULT '.length)) as GuestResult
    console.log(`[provider-softroce] in the guest: ${r.checks.length} checks in ${r.ms} ms (${Math.round((Date.now() - t0) / 1000)} s with boot); path ${JSON.stringify(r.batchedIo)}, ICRCs by ${r.icrcEngine}; ${r.retransmits} retransmits after ${r.timeouts} ACK timeouts`)
    expect(r.checks.filter((c) => !c.ok), JSON.stringify(r.checks)).toEqual([])
    expect(r.checks.map((c) => c.name)).toEqual(['WRITE 1 MiB', 'WRITE 1 MiB - 3 bytes at offset 5', 'READ 1 MiB back'])
    expect(r.helper).toBe('loaded')
    expect(r.icrcEngine).toBe('native')
    expect(r.batchedIo).toEqual({ send: 'gso', receive: 'gro' })
  }, 960_000)
})
