/**
 * `rdma-session perftest -R` against perftest's own -R (Debian 12's, 6.06) on Linux kernel
 * soft-RoCE: the rxe-vm guest (tools/rxe-vm, --tap) runs ib_write_bw -R, ib_read_bw -R and
 * ib_send_lat -R on rxe2; the host runs the bundled
 * `rdma-session perftest -R` inside the guest's network namespace (10.77.0.1, UDP 4791), once as
 * the client of perftest's server and once as the server of perftest's client. Everything goes
 * through rdma_cm: the control connection (versions, MTU, QP keys, reports as SENDs) and the test
 * QP, on the -p port. IPv4 only: perftest 6.06 resolves -R addresses with AF_INET (an IPv6
 * address is refused by perftest itself). Both ends must exit 0 and print a result row with the
 * size and iterations asked for; the server's row of a BW test must be the client's (it came
 * over the control QP); softroce must have dropped no packet of rxe's and no CM MAD. At the end
 * the guest runs ib_write_bw -R, ib_read_bw -R and ib_send_lat -R rxe0 <-> rxe0, so the report
 * can put softroce <-> rxe next to rxe <-> rxe from the same run.
 *
 * Skipped, with the reason printed, only when the guest cannot run here: no root, no
 * /dev/net/tun, or tools/rxe-vm not built (tools/rxe-vm/build.sh; CI builds it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { guestSupport, startGuest, type Guest, type RunResult } from '../../../tools/rxe-vm/index.mjs'
import { environmentSkip } from '../../../tools/test-env.mjs'
import { bundleCliForGuest } from './guest-cli.js'
import { guestClientLoop, guestRun, guestShow, resultRow, tagged } from './perftest-guest.js'
import { expectNoRxeDrops, expectStepFigures, guestStepOutput, hostClientRun, stepRows } from './perftest-step.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const pkg = join(here, '..')

const why = environmentSkip('cli perftest -R <-> perftest -R on kernel rxe', guestSupport())

type Verb = 'write' | 'read' | 'send'
interface Test { readonly verb: Verb; readonly kind: 'bw' | 'lat'; readonly size: number; readonly iters: number }
interface Step extends Test { readonly k: number; readonly guest: 'server' | 'client'; readonly port: number }

const TESTS: Test[] = [
  { verb: 'write', kind: 'bw', size: 65536, iters: 500 },
  { verb: 'read', kind: 'bw', size: 65536, iters: 500 },
  { verb: 'send', kind: 'lat', size: 8, iters: 300 },
]
const STEPS: Step[] = []
for (const t of TESTS) for (const guest of ['server', 'client'] as const) STEPS.push({ ...t, k: STEPS.length, guest, port: 18800 + STEPS.length })
/** rxe0 <-> rxe0 in the guest, for the figures. */
const BASELINE: Test[] = TESTS
const RXE_PORT = 18900

const tool = (s: Pick<Test, 'verb' | 'kind'>): string => `ib_${s.verb}_${s.kind}`
const runArgs = (s: Test): string[] => ['-s', String(s.size), '-n', String(s.iters)]

/**
 * The guest runs the steps in order, each perftest bounded by `timeout`. As a client it first
 * waits until the host's server listens (host-listening-<k> in the share) and retries while
 * rdma_cm refuses; as a server it just starts. After each step it waits until the host's side has
 * ended (host-done-<k>). Then the rxe0 <-> rxe0 baselines (tags base-<i>-s/-c), each tried up
 * to 3 times (perftest -R against itself is racy, below).
 */
function guestScript(): string {
  const lines = ['set -u', 'dmesg -n 1 2>/dev/null || true']
  for (const s of STEPS) {
    const common = `-R -d rxe2 -x 1 -p ${s.port} ${runArgs(s).join(' ')} -F`
    const out = `/tmp/${s.k}.out`
    if (s.guest === 'server') lines.push(`${guestRun(`${tool(s)} ${common}`, out)}; rc=$?`)
    else {
      lines.push(
        `for i in $(seq 1 900); do [ -e "host-listening-${s.k}" ] && break; sleep 0.2; done`,
        guestClientLoop(`${tool(s)} ${common} 10.77.0.1`, out, `host-done-${s.k}`),
      )
    }
    lines.push(
      `for i in $(seq 1 900); do [ -e "host-done-${s.k}" ] && break; sleep 0.2; done`,
      `${guestShow(out, String(s.k))}; echo "@@${s.k} exit=$rc"`,
    )
  }
  BASELINE.forEach((t, i) => {
    const common = `-R -d rxe0 -x 1 -p ${RXE_PORT + i} ${runArgs(t).join(' ')} -F`
    const tag = `base-${i}`
    // perftest against itself has a race of its own: its server listens for the test QPs only
    // after answering the handshake before them, and when its client's REQ comes first, 6.06's
    // client retry path may crash (SIGSEGV) and leave the server waiting. Up to 3 tries.
    lines.push(
      'for try in 1 2 3; do',
      `${guestRun(`${tool(t)} ${common}`, `/tmp/${tag}-s.out`)} & spid=$!`,
      'sleep 1',
      guestClientLoop(`${tool(t)} ${common} 10.0.2.15`, `/tmp/${tag}-c.out`),
      '[ $rc -eq 0 ] || kill $spid 2>/dev/null',
      'wait $spid; src=$?',
      '[ $rc -eq 0 ] && [ $src -eq 0 ] && break',
      'done',
      `${guestShow(`/tmp/${tag}-s.out`, `${tag}-s`)}; ${guestShow(`/tmp/${tag}-c.out`, `${tag}-c`)}; echo "@@${tag} exit=$rc/$src"`,
    )
  })
  return `${lines.join('\n')}\n`
}

interface CmStats { readonly drops: Record<string, number> }

const figures: string[] = []

describe.skipIf(Boolean(why))('rdma-session perftest -R <-> perftest -R on kernel rxe (rxe-vm guest)', () => {
  let guest: Guest | null = null
  let bin = ''
  let share = ''

  beforeAll(async () => {
    bin = await bundleCliForGuest(pkg, 'perftest-rdma-cm')
    share = mkdtempSync(join(tmpdir(), 'perftest-rdma-cm-'))
    writeFileSync(join(share, 'steps.sh'), guestScript())
    guest = await startGuest({ command: 'bash steps.sh', share, timeoutMs: 1_200_000 })
    await guest.ready
  }, 240_000)

  afterAll(async () => {
    await guest?.kill()
    if (share !== '') rmSync(share, { recursive: true, force: true })
    if (figures.length > 0) console.info(`[cli perftest -R] figures (host softroce <-> guest rxe2 over the tap; rxe0 <-> rxe0 in the guest):\n  ${figures.join('\n  ')}`)
  })

  /** The command in the netns; `onListening` when its server says it waits for the client. */
  const runHost = (args: string[], timeoutMs: number, onListening?: () => void): Promise<RunResult> =>
    new Promise((resolve, reject) => {
      const p = guest!.spawn(process.execPath, [bin, 'perftest', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      p.stdout!.setEncoding('utf8').on('data', (d: string) => {
        stdout += d
        if (onListening !== undefined && stdout.includes('* Waiting for client to connect... *')) {
          onListening()
          onListening = undefined
        }
      })
      p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
      const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs)
      p.on('error', (err) => (clearTimeout(timer), reject(err)))
      p.on('close', (code, signal) => (clearTimeout(timer), resolve({ code, signal, stdout, stderr })))
    })

  for (const s of STEPS) {
    const role = s.guest === 'server' ? `softroce client -> ${tool(s)} -R server` : `${tool(s)} -R client -> softroce server`
    it(`IPv4, ${role}, ${s.size} bytes, ${s.iters} iterations`, async () => {
      const common = [s.verb, s.kind, '-R', '-x', '1', '-p', String(s.port), ...runArgs(s), '--address', '10.77.0.1', '--stats']
      const t0 = Date.now()
      let r: RunResult
      try {
        if (s.guest === 'server') {
          r = await hostClientRun(() => runHost([...common, '10.77.0.2'], 150_000), /Couldn't connect/, t0)
        } else {
          r = await runHost(common, 150_000, () => writeFileSync(join(share, `host-listening-${s.k}`), ''))
        }
      } finally {
        writeFileSync(join(share, `host-done-${s.k}`), '')
      }
      expect(r.code, `rdma-session perftest: ${r.stdout}\n${r.stderr}`).toBe(0)
      const { lines: g, out: gOut, err: gErr } = await guestStepOutput(guest!, s.k)
      expect(g, `${tool(s)} -R (guest): ${gOut}\n${gErr}`).toContain('exit=0')
      // Both ran over rdma_cm: perftest says so in its banner, and so does the command.
      expect(gOut).toMatch(/^ rdma_cm QPs\t? *: ON$/m)
      expect(gOut).toMatch(/^ Data ex\. method : rdma_cm/m)
      expect(r.stdout).toContain(' rdma_cm QPs\t : ON\n Data ex. method : rdma_cm\n')
      const { hostSide, rows } = stepRows('cli perftest -R', s, tool(s), r.stdout, gOut)
      for (const [who, row] of rows) {
        expect(row, `${who} result row in:\n${who === tool(s) ? gOut : r.stdout}`).not.toBeNull()
        expect(row!.size, who).toBe(s.size)
        expect(row!.iters, who).toBe(s.iters)
      }
      // A BW server (but a SEND receiver) prints the client's figures, received over the control QP.
      expectStepFigures(s, hostSide, rows)
      // The keys came over rdma_cm: the command printed rxe2's GID for the remote side.
      expect(r.stdout).toMatch(/ remote address: LID 0000 QPN 0x[0-9a-f]{4,6} PSN 0x[0-9a-f]+/)
      expect(r.stdout).toMatch(/GID: 00:00:00:00:00:00:00:00:00:00:255:255:10:77:00:02$/m)
      expectNoRxeDrops(r.stderr)
      const cm = JSON.parse(/^softroce cm: (.*)$/m.exec(r.stderr)?.[1] ?? 'null') as CmStats | null
      expect(cm, `--stats cm line in: ${r.stderr}`).not.toBeNull()
      // Only a DREP that crossed our own DREQ's answer may come too late (Linux's cm.c drops it as
      // well), and MADs of an earlier step's connections (a late DREQ resent to UDP 4791) name a
      // connection this process does not know; nothing may be malformed.
      expect(Object.entries(cm!.drops).filter(([why, n]) => n > 0 && why !== 'wrongState' && why !== 'unknownCommId'), 'CM MADs softroce dropped').toEqual([])
      expect(cm!.drops.wrongState ?? 0).toBeLessThanOrEqual(2)
      const line = `IPv4 ${role.padEnd(44)} ${String(s.size).padStart(6)} B: ${rows.map(([who, row]) => `${who} ${row!.figure} ${s.kind === 'bw' ? 'MB/s' : 'usec'}`).join(', ')}`
      figures.push(line)
      console.info(`[cli perftest -R] step ${s.k} (${Date.now() - t0} ms) ${line}`)
    }, 400_000)
  }

  it('rxe0 <-> rxe0 -R in the same guest: ib_write_bw, ib_read_bw, ib_send_lat (the baseline)', async () => {
    const exit = await guest!.exited
    expect(exit.code, exit.stderr.slice(-2000)).toBe(0)
    BASELINE.forEach((t, i) => {
      const tag = `base-${i}`
      expect(tagged(exit.output, tag), [...tagged(exit.output, `${tag}-s!`), ...tagged(exit.output, `${tag}-c!`)].join('\n')).toContain('exit=0/0')
      const row = resultRow(tagged(exit.output, `${tag}-c`).join('\n'), t.kind)
      expect(row, tagged(exit.output, `${tag}-c`).join('\n')).not.toBeNull()
      expect(row!.iters).toBe(t.iters)
      figures.push(`rxe0 <-> rxe0 ${`${tool(t)} -R`.padEnd(40)} ${String(t.size).padStart(6)} B: ${row!.figure} ${t.kind === 'bw' ? 'MB/s' : 'usec'}`)
    })
  }, 600_000)
})
