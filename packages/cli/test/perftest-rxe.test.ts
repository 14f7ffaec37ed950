/**
 * `rdma-session perftest` against perftest itself (Debian 12's, 6.06) on Linux kernel soft-RoCE:
 * the rxe-vm guest (tools/rxe-vm, --tap) runs ib_write_bw, ib_read_bw, ib_send_bw, ib_atomic_bw,
 * ib_write_lat, ib_read_lat and ib_send_lat on rxe2; the host runs the bundled `rdma-session
 * perftest` inside the guest's network namespace (10.77.0.1 / fd77::1, UDP 4791), once as the
 * client of perftest's server and once as the server of perftest's client, over IPv4 (rxe2 GID 1)
 * and, for the BW tests and write latency, IPv6 (GID 2; perftest's exchange itself is IPv4-only
 * TCP). Both ends must exit 0 and print a result row with the size and iterations asked for and a
 * positive figure, and softroce must have dropped no packet of rxe's (bad ICRC, malformed).
 * Over IPv4 also ib_write_bw with 2 QPs, ib_send_bw -a (every size 2 … 2^23) and -D with ib_write_bw, ib_send_bw, ib_send_lat, ib_write_lat and ib_read_lat. At the end the guest
 * runs ib_write_bw and ib_write_lat rxe0 <-> rxe0, so the report can put softroce <-> rxe next to
 * rxe <-> rxe from the same run.
 *
 * Skipped, with the reason printed, only when the guest cannot run here: no root, no
 * /dev/net/tun, or tools/rxe-vm not built (tools/rxe-vm/build.sh; CI builds it).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { guestSupport, startGuest, type Guest, type RunResult } from '../../../tools/rxe-vm/index.mjs'
import { environmentSkip } from '../../../tools/test-env.mjs'
import { bundleCliForGuest } from './guest-cli.js'
import { guestClientLoop, guestRun, guestShow, kindRow, resultRow, tagged } from './perftest-guest.js'
import { expectNoRxeDrops, expectStepFigures, guestStepOutput, hostClientRun, stepRows } from './perftest-step.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const pkg = join(here, '..')

const why = environmentSkip('cli perftest <-> perftest on kernel rxe', guestSupport())

type Verb = 'write' | 'read' | 'send' | 'atomic'
interface Step {
  readonly k: number
  readonly fam: 4 | 6
  readonly verb: Verb
  readonly kind: 'bw' | 'lat'
  /** Which side perftest (in the guest) plays. */
  readonly guest: 'server' | 'client'
  readonly size: number
  readonly iters: number
  /** -q (default 1). */
  readonly qps?: number
  /** -a: sizes 2 … 2^23 instead of -s. */
  readonly all?: boolean
  /** -D: seconds instead of -n (`iters` then unknown in advance). */
  readonly duration?: number
  readonly tcpPort: number
}

const STEPS: Step[] = []
const TESTS: Omit<Step, 'k' | 'fam' | 'guest' | 'tcpPort'>[] = [
  { verb: 'write', kind: 'bw', size: 65536, iters: 1000 },
  { verb: 'write', kind: 'lat', size: 8, iters: 1000 },
  { verb: 'read', kind: 'bw', size: 65536, iters: 1000 },
  { verb: 'send', kind: 'bw', size: 65536, iters: 1000 },
  { verb: 'atomic', kind: 'bw', size: 8, iters: 1000 },
  { verb: 'read', kind: 'lat', size: 8, iters: 500 },
  { verb: 'send', kind: 'lat', size: 8, iters: 500 },
  { verb: 'atomic', kind: 'lat', size: 8, iters: 500 },
  { verb: 'write', kind: 'bw', size: 65536, iters: 500, qps: 2 },
  { verb: 'send', kind: 'bw', size: 2, iters: 5, all: true },
  { verb: 'write', kind: 'bw', size: 65536, iters: 0, duration: 4 },
  { verb: 'send', kind: 'bw', size: 65536, iters: 0, duration: 4 },
  { verb: 'send', kind: 'lat', size: 8, iters: 0, duration: 4 },
  { verb: 'write', kind: 'lat', size: 8, iters: 0, duration: 4 },
  { verb: 'read', kind: 'lat', size: 8, iters: 0, duration: 4 },
]
for (const fam of [4, 6] as const) {
  for (const t of TESTS) {
    if (fam === 6 && ((t.kind === 'lat' && t.verb !== 'write') || t.qps !== undefined || t.all === true || t.duration !== undefined)) continue
    for (const guest of ['server', 'client'] as const) STEPS.push({ k: STEPS.length, fam, ...t, guest, tcpPort: 18600 + STEPS.length })
  }
}
// PERFTEST_RXE_STEPS=18,19 runs only those steps (and the rxe0 baseline): for chasing one step.
const only = process.env.PERFTEST_RXE_STEPS?.split(',').map(Number)
if (only !== undefined) STEPS.splice(0, STEPS.length, ...STEPS.filter((s) => only.includes(s.k)))
const gidIndex = (fam: 4 | 6): number => (fam === 4 ? 1 : 2)
const tool = (s: Pick<Step, 'verb' | 'kind'>): string => `ib_${s.verb}_${s.kind}`
type RunShape = Pick<Step, 'verb' | 'size' | 'iters' | 'qps' | 'all' | 'duration'>
/**
 * -s/-a, -n/-D and -q, the same for perftest and the command; and -u 18 (a 1.07 s ACK timeout
 * instead of 67 ms): a TCG guest on a loaded host answers late, and 7 timeouts in a row of a
 * sender whose packets all arrived (rxe counted them as duplicates) ended a loaded run with
 * RETRY_EXC_ERR.
 */
const runArgs = (s: RunShape): string[] => [
  '-u', '18',
  ...(s.verb === 'atomic' ? [] : s.all === true ? ['-a'] : ['-s', String(s.size)]),
  ...(s.duration === undefined ? ['-n', String(s.iters)] : ['-D', String(s.duration)]),
  ...(s.qps === undefined ? [] : ['-q', String(s.qps)]),
]
const sizeArgs = (s: RunShape): string => runArgs(s).join(' ')
const RXE_PORT = 18700
/**
 * How long perftest may run in the guest (s). -a moves 2 × 42 MB through the TCG guest, which a
 * loaded host slows to 1 MB/s or less (an unloaded run takes 12–20 s); the others move at most a
 * few MB. The host's command gets 50 s more, so a stalled run ends by its peer going away and
 * still prints its counters.
 */
const guestSeconds = (s: Step): number => (s.all === true ? 450 : 150)
const BASELINE_SECONDS = 450
const hostMs = (s: Step): number => (guestSeconds(s) + 50) * 1000

/**
 * The guest runs the steps in order, each perftest bounded by `timeout`; as a client it retries
 * while the host's server is not listening yet. After each step it waits (at most 180 s) until
 * the host's side has ended too (host-done-<k> in the share), so no two runs overlap. perftest's
 * stdout lines are tagged "@@<k> ", its stderr lines "@@<k>! " (kept apart: stdout to a file is
 * block-buffered, so a warning on stderr would land inside a result row). Then rxe0 <-> rxe0
 * (tags rxe-bw-s/-c, rxe-lat-s/-c).
 */
function guestScript(): string {
  const lines = ['set -u', 'dmesg -n 1 2>/dev/null || true']
  const run = guestRun
  const clientLoop = guestClientLoop
  const show = guestShow
  for (const s of STEPS) {
    const common = `-d rxe2 -x ${gidIndex(s.fam)} -p ${s.tcpPort} ${sizeArgs(s)} -F`
    const seconds = guestSeconds(s)
    if (s.guest === 'server') lines.push(`${run(`${tool(s)} ${common}`, `/tmp/${s.k}.out`, seconds)}; rc=$?`)
    else lines.push(clientLoop(`${tool(s)} ${common} 10.77.0.1`, `/tmp/${s.k}.out`, undefined, seconds))
    lines.push(
      `for i in $(seq 1 900); do [ -e "host-done-${s.k}" ] && break; sleep 0.2; done`,
      // rxe2's counters so far (retries, sequence errors, ...), for a failure message
      `echo "@@${s.k}# $(grep -H . /sys/class/infiniband/rxe2/ports/1/hw_counters/* 2>/dev/null | sed 's|.*/||; s/:/=/' | grep -v '=0$' | tr '\\n' ' ')"`,
      `${show(`/tmp/${s.k}.out`, String(s.k))}; echo "@@${s.k} exit=$rc"`,
    )
  }
  for (const [tag, t] of [['rxe-bw', TESTS[0]!], ['rxe-lat', TESTS[1]!]] as const) {
    const common = `-d rxe0 -x 1 -p ${RXE_PORT + (tag === 'rxe-bw' ? 0 : 1)} ${sizeArgs(t)} -F`
    lines.push(
      // a figure only, but 64 MB through rxe0 in a loaded TCG guest: the -a steps' bound
      `${run(`${tool(t)} ${common}`, `/tmp/${tag}-s.out`, BASELINE_SECONDS)} & spid=$!`,
      clientLoop(`${tool(t)} ${common} 127.0.0.1`, `/tmp/${tag}-c.out`, undefined, BASELINE_SECONDS),
      'wait $spid; src=$?',
      `${show(`/tmp/${tag}-s.out`, `${tag}-s`)}; ${show(`/tmp/${tag}-c.out`, `${tag}-c`)}; echo "@@${tag} exit=$rc/$src"`,
    )
  }
  return `${lines.join('\n')}\n`
}

const figures: string[] = []

describe.skipIf(Boolean(why))('rdma-session perftest <-> perftest on kernel rxe (rxe-vm guest)', () => {
  let guest: Guest | null = null
  let bin = ''
  let share = ''

  beforeAll(async () => {
    bin = await bundleCliForGuest(pkg, 'perftest-rxe')
    share = mkdtempSync(join(tmpdir(), 'perftest-rxe-'))
    writeFileSync(join(share, 'steps.sh'), guestScript())
    guest = await startGuest({ command: 'bash steps.sh', share, timeoutMs: 2_100_000 })
    await guest.ready
  }, 240_000)

  afterAll(async () => {
    await guest?.kill()
    if (share !== '') rmSync(share, { recursive: true, force: true })
    if (figures.length > 0) console.info(`[cli perftest] figures (host softroce <-> guest rxe2 over the tap; rxe0 <-> rxe0 in the guest):\n  ${figures.join('\n  ')}`)
  })

  const runHost = (args: string[], timeoutMs: number): Promise<RunResult> => guest!.run(process.execPath, [bin, 'perftest', ...args], { timeoutMs })

  for (const s of STEPS) {
    const role = s.guest === 'server' ? `softroce client -> ${tool(s)} server` : `${tool(s)} client -> softroce server`
    it(`IPv${s.fam} (GID ${gidIndex(s.fam)}), ${role}, ${s.all === true ? 'sizes 2 … 2^23' : `${s.size} bytes`}, ${s.duration === undefined ? `${s.iters} iterations` : `-D ${s.duration}`}${s.qps === undefined ? '' : `, ${s.qps} QPs`}`, async () => {
      const address = s.fam === 4 ? '10.77.0.1' : 'fd77::1'
      const common = [s.verb, s.kind, '-x', String(gidIndex(s.fam)), '-p', String(s.tcpPort), ...runArgs(s), '--address', address, '--stats']
      const t0 = Date.now()
      let r: RunResult
      try {
        if (s.guest === 'server') {
          // perftest's server listens on IPv4 only: the exchange goes to 10.77.0.2 for both families.
          r = await hostClientRun(() => runHost([...common, '10.77.0.2'], hostMs(s)), /ECONNREFUSED|Couldn't connect/, t0)
        } else {
          r = await runHost(common, hostMs(s))
        }
      } finally {
        writeFileSync(join(share, `host-done-${s.k}`), '')
      }
      const { lines: g, out: gOut, err: gErr } = await guestStepOutput(guest!, s.k)
      if (r.code !== 0) {
        // on failure, both sides' output (which end stopped first, and where), rxe2's counters and the netns' UDP counters (receive buffer drops)
        const udp = await guest!.run('cat', ['/proc/net/snmp'], { timeoutMs: 10_000 }).then((u) => u.stdout.split('\n').filter((l) => l.startsWith('Udp:')).join('\n'), (e: Error) => e.message)
        expect(r.code, `rdma-session perftest (${Date.now() - t0} ms): ${r.stdout}\n${r.stderr}\n--- ${tool(s)} (guest):\n${gOut}\n${gErr}\n--- rxe2 counters: ${tagged(guest!.output(), `${s.k}#`).join(' ')}\n--- netns ${udp}`).toBe(0)
      }
      expect(g, `${tool(s)} (guest): ${gOut}\n${gErr}`).toContain('exit=0')
      const { hostSide, rows } = stepRows('cli perftest', s, tool(s), r.stdout, gOut)
      if (s.duration !== undefined && s.kind === 'lat') for (const [who] of rows) expect(who === tool(s) ? gOut : r.stdout).toContain(' #bytes        #iterations       t_avg[usec]    tps average')
      for (const [who, row] of rows) {
        expect(row, `${who} result row in:\n${who === tool(s) ? gOut : r.stdout}`).not.toBeNull()
        const out = who === tool(s) ? gOut : r.stdout
        if (s.all === true) {
          // every size, but a BW server prints only the report of the last (perftest's xchg_bw_reports)
          const sizes = [...out.matchAll(new RegExp(kindRow(s.kind).source, 'gm'))].map((m) => Number(m[1]))
          expect(sizes, who).toEqual(s.kind === 'bw' && s.verb !== 'send' && who !== tool(s) && hostSide === 'server' ? [2 ** 23] : Array.from({ length: 23 }, (_, i) => 2 ** (i + 1)))
        } else {
          expect(row!.size, who).toBe(s.verb === 'atomic' ? 8 : s.size)
        }
        if (s.duration === undefined) expect(row!.iters, who).toBe(s.iters * (s.qps ?? 1))
        else expect(row!.iters, who).toBeGreaterThan(0)
      }
      expectStepFigures(s, hostSide, rows)
      expect(r.stdout).toMatch(new RegExp(`GID: ${s.fam === 4 ? '00:00:00:00:00:00:00:00:00:00:255:255:10:77:00:02' : '253:119:00:00:00:00:00:00:00:00:00:00:00:00:00:02'}$`, 'm'))
      expectNoRxeDrops(r.stderr)
      const shape = `${s.all === true ? 8388608 : s.verb === 'atomic' ? 8 : s.size} B${s.all === true ? ' (last of -a)' : ''}${s.qps === undefined ? '' : `, ${s.qps} QPs`}${s.duration === undefined ? '' : `, -D ${s.duration}`}`
      const line = `IPv${s.fam} ${role.padEnd(40)} ${shape.padStart(8)}: ${rows.map(([who, row]) => `${who} ${row!.figure} ${s.kind === 'bw' ? 'MB/s' : 'usec'}`).join(', ')}`
      figures.push(line)
      console.info(`[cli perftest] step ${s.k} (${Date.now() - t0} ms) ${line}`)
    }, hostMs(s) + 320_000)
  }

  it('rxe0 <-> rxe0 in the same guest: ib_write_bw and ib_write_lat (the baseline)', async () => {
    const exit = await guest!.exited
    expect(exit.code, exit.stderr.slice(-2000)).toBe(0)
    for (const [tag, kind] of [['rxe-bw', 'bw'], ['rxe-lat', 'lat']] as const) {
      expect(tagged(exit.output, tag)).toContain('exit=0/0')
      const row = resultRow(tagged(exit.output, `${tag}-c`).join('\n'), kind)
      expect(row, tagged(exit.output, `${tag}-c`).join('\n')).not.toBeNull()
      expect(row!.iters).toBe(TESTS[kind === 'bw' ? 0 : 1]!.iters)
      figures.push(`rxe0 <-> rxe0 ${tool({ verb: 'write', kind }).padEnd(30)} ${kind === 'bw' ? '65536' : '    8'} B: ${row!.figure} ${kind === 'bw' ? 'MB/s' : 'usec'}`)
    }
  }, 1_000_000)
})
