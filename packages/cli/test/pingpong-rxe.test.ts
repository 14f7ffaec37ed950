/**
 * `rdma-session pingpong` against rdma-core's ibv_rc_pingpong on Linux kernel soft-RoCE: the
 * rxe-vm guest (tools/rxe-vm, --tap) runs ibv_rc_pingpong on rxe2, the host runs the bundled
 * `rdma-session` inside the guest's network namespace (10.77.0.1 / fd77::1, UDP 4791). Over IPv4
 * (rxe2 GID 1) and IPv6 (GID 2), softroce as client and as server, messages below and above the
 * MTU (64 and 4096 bytes, -m 1024), -c on both sides. Both ends must report success with the same
 * byte and iteration counts; afterwards rxe's counters must show every RoCE datagram it got past
 * the ICRC check (rcvd_pkts = UDP InDatagrams) and no retransmission on either side.
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

const here = fileURLToPath(new URL('.', import.meta.url))
const pkg = join(here, '..')

const why = environmentSkip('cli pingpong <-> ibv_rc_pingpong on kernel rxe', guestSupport())

const ITERS = 200
const MTU = 1024

interface Step {
  readonly k: number
  readonly fam: 4 | 6
  /** Which side ibv_rc_pingpong (in the guest) plays. */
  readonly guest: 'server' | 'client'
  readonly size: number
  readonly tcpPort: number
}

const STEPS: Step[] = []
for (const fam of [4, 6] as const) {
  for (const size of [64, 4096]) {
    for (const guest of ['server', 'client'] as const) STEPS.push({ k: STEPS.length, fam, guest, size, tcpPort: 18520 + STEPS.length })
  }
}
const gidIndex = (fam: 4 | 6): number => (fam === 4 ? 1 : 2)

/**
 * The guest runs the steps in order, each ibv_rc_pingpong bounded by `timeout`; as a client it
 * retries while the host's server is not listening yet. Every output line is tagged "@@<k> ".
 * A step's counters are read once they are final: after the host's `rdma-session pingpong` has
 * exited (the test creates host-done-<k> in the share then: no retransmission of ours can follow)
 * and the guest's UDP counters stopped moving (what was still on the tap link has been taken).
 * A fixed second could end before either, and a late datagram then counted in the next step.
 */
function guestScript(): string {
  // rxe2's hw_counters and the UDP MIBs (every datagram the rxe tunnel socket took), tagged.
  const counters = (tag: string): string =>
    `{ for f in /sys/class/infiniband/rxe2/ports/1/hw_counters/*; do printf '%s=%s ' "\${f##*/}" "$(cat $f)"; done; ` +
    `awk '/^Udp:/ { if (n++) printf "udp4_in=%s ", $2 }' /proc/net/snmp; awk '$1 == "Udp6InDatagrams" { printf "udp6_in=%s", $2 }' /proc/net/snmp6; echo; } | sed 's/^/@@${tag} /'`
  const lines = [
    'set -u', 'dmesg -n 1 2>/dev/null || true',
    `udp_in() { awk '/^Udp:/ { if (n++) printf "%s ", $2 }' /proc/net/snmp; awk '$1 == "Udp6InDatagrams" { print $2 }' /proc/net/snmp6; }`,
    // final() K: waits (at most 180 s) for the host's side of step K to end, then until two reads 0.3 s apart agree.
    `final() { for i in $(seq 1 900); do [ -e "host-done-$1" ] && break; sleep 0.2; done; [ -e "host-done-$1" ] || echo "@@$1 no host-done-$1 after 180 s"; ` +
      'local a b; a=$(udp_in); for i in $(seq 1 100); do sleep 0.3; b=$(udp_in); [ "$a" = "$b" ] && break; a=$b; done; }',
    counters('c-start'),
  ]
  for (const s of STEPS) {
    const common = `-d rxe2 -g ${gidIndex(s.fam)} -p ${s.tcpPort} -s ${s.size} -m ${MTU} -n ${ITERS} -c`
    if (s.guest === 'server') {
      lines.push(`timeout 150 ibv_rc_pingpong ${common} > /tmp/${s.k}.out 2>&1; rc=$?`)
    } else {
      const host = s.fam === 4 ? '10.77.0.1' : 'fd77::1'
      lines.push(`for i in $(seq 1 600); do timeout 150 ibv_rc_pingpong ${common} ${host} > /tmp/${s.k}.out 2>&1; rc=$?; grep -q "Couldn't connect" /tmp/${s.k}.out || break; sleep 0.2; done`)
    }
    lines.push(`final ${s.k}`, counters(`c${s.k}`), `sed 's/^/@@${s.k} /' /tmp/${s.k}.out; echo "@@${s.k} exit=$rc"`)
  }
  return `${lines.join('\n')}\n`
}

function tagged(output: string, tag: string): string[] {
  return output.split(/\r?\n/).filter((l) => l.startsWith(`@@${tag} `)).map((l) => l.slice(tag.length + 3))
}

type Counters = Record<string, number>
function parseCounters(line: string | undefined): Counters {
  return Object.fromEntries((line ?? '').trim().split(/\s+/).filter((kv) => kv.includes('=')).map((kv) => kv.split('=')).map(([k, v]) => [k!, Number(v)]))
}
const delta = (after: Counters, before: Counters): Counters => Object.fromEntries(Object.keys(after).map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)]))
const udpIn = (c: Counters): number => (c.udp4_in ?? 0) + (c.udp6_in ?? 0)

interface SoftroceCounters { packetsSent: number; retransmits: number; drops: Record<string, number> }

/** What both rc_pingpong and `rdma-session pingpong` print for a successful run. */
function expectSuccess(out: string, s: Step, who: string): void {
  expect(out, `${who} output`).toMatch(new RegExp(`^${s.size * ITERS * 2} bytes in \\d+\\.\\d\\d seconds = \\d+\\.\\d\\d Mbit/sec$`, 'm'))
  expect(out, `${who} output`).toMatch(new RegExp(`^${ITERS} iters in \\d+\\.\\d\\d seconds = \\d+\\.\\d\\d usec/iter$`, 'm'))
  expect(out, `${who} output`).not.toMatch(/invalid data|Failed status/)
}

describe.skipIf(Boolean(why))('rdma-session pingpong <-> ibv_rc_pingpong on kernel rxe (rxe-vm guest)', () => {
  let guest: Guest | null = null
  let bin = ''
  let share = ''
  /** Per step: rxe2's counter deltas and softroce's counters (--stats). */
  const perStep: { k: number; rxe: Counters; softroce: SoftroceCounters }[] = []

  beforeAll(async () => {
    bin = await bundleCliForGuest(pkg, 'pingpong-rxe')
    share = mkdtempSync(join(tmpdir(), 'pingpong-rxe-'))
    writeFileSync(join(share, 'steps.sh'), guestScript())
    guest = await startGuest({ command: 'bash steps.sh', share, timeoutMs: 900_000 })
    await guest.ready
  }, 240_000)

  afterAll(async () => {
    await guest?.kill()
    if (share !== '') rmSync(share, { recursive: true, force: true })
  })

  /** One host-side run inside the netns: exit code, stdout, stderr. */
  const runHost = (args: string[], timeoutMs: number): Promise<RunResult> => guest!.run(process.execPath, [bin, 'pingpong', ...args], { timeoutMs })

  for (const s of STEPS) {
    const role = s.guest === 'server' ? 'softroce client -> rxe server' : 'rxe client -> softroce server'
    it(`IPv${s.fam} (GID ${gidIndex(s.fam)}), ${role}, ${s.size} bytes, MTU ${MTU}, ${ITERS} iterations`, async () => {
      const common = ['-g', String(gidIndex(s.fam)), '-p', String(s.tcpPort), '-s', String(s.size), '-m', String(MTU), '-n', String(ITERS), '-c', '--stats']
      const t0 = Date.now()
      let r: RunResult
      try {
        if (s.guest === 'server') {
          // ibv_rc_pingpong's server listens on IPv4 only: the exchange goes to 10.77.0.2 for both families.
          const args = [...common, '--address', s.fam === 4 ? '10.77.0.1' : 'fd77::1', '10.77.0.2']
          for (;;) {
            r = await runHost(args, 150_000)
            if (!(r.code === 1 && /Couldn't connect/.test(r.stderr)) || Date.now() - t0 > 180_000) break
            await new Promise((res) => setTimeout(res, 250))
          }
        } else {
          // No --address: the GID comes from the TCP connection the guest makes (10.77.0.1 / fd77::1).
          r = await runHost(common, 150_000)
        }
      } finally {
        // The host's side has ended (or failed): the guest may read this step's counters now.
        writeFileSync(join(share, `host-done-${s.k}`), '')
      }
      expect(r.code, `rdma-session pingpong: ${r.stdout}\n${r.stderr}`).toBe(0)
      expectSuccess(r.stdout, s, 'rdma-session pingpong')
      expect(r.stdout).toMatch(new RegExp(`GID ${s.fam === 4 ? '::ffff:10\\.77\\.0\\.2' : 'fd77::2'}$`, 'm'))
      expect(r.stdout).toMatch(new RegExp(`local address: {2}LID 0x0000, .*GID ${s.fam === 4 ? '::ffff:10\\.77\\.0\\.1' : 'fd77::1'}$`, 'm'))
      // the guest's side of the same step
      let g: string[] = []
      for (let i = 0; i < 600 && !g.some((l) => l.startsWith('exit=')); i++) {
        await new Promise((res) => setTimeout(res, 100))
        g = tagged(guest!.output(), String(s.k))
      }
      const gOut = g.join('\n')
      console.info(`[cli] step ${s.k} IPv${s.fam} ${role} ${s.size} B: host ${Date.now() - t0} ms\n  host: ${r.stdout.trim().split('\n').slice(-2).join(' | ')}\n  rxe:  ${g.filter((l) => /bytes in|iters in/.test(l)).join(' | ')}`)
      expect(g, `ibv_rc_pingpong (guest): ${gOut}`).toContain('exit=0')
      expectSuccess(gOut, s, 'ibv_rc_pingpong')

      // No ICRC drops either way. softroce counts its own (rxe -> softroce). rxe counts rcvd_pkts
      // after its ICRC check, so rcvd_pkts = UDP InDatagrams unless a datagram failed the ICRC or
      // the header check; the only header-check drop a clean run can have is a retransmission of
      // ours that arrives after ibv_rc_pingpong destroyed its QP, so the gap is bounded by them.
      const sr = JSON.parse(/^softroce counters: (.*)$/m.exec(r.stderr)?.[1] ?? 'null') as SoftroceCounters | null
      expect(sr, `--stats line in: ${r.stderr}`).not.toBeNull()
      const before = parseCounters(tagged(guest!.output(), s.k === 0 ? 'c-start' : `c${s.k - 1}`)[0])
      const rxe = delta(parseCounters(tagged(guest!.output(), `c${s.k}`)[0]), before)
      perStep.push({ k: s.k, rxe, softroce: sr! })
      console.info(`  softroce: sent ${sr!.packetsSent}, retransmits ${sr!.retransmits}, drops ${JSON.stringify(sr!.drops)}\n` +
        `  rxe2: rcvd_pkts ${rxe.rcvd_pkts}, UDP in ${udpIn(rxe)}, sent_pkts ${rxe.sent_pkts}, duplicate_request ${rxe.duplicate_request}, completer_retry_err ${rxe.completer_retry_err}`)
      expect(sr!.drops.badIcrc, 'softroce dropped rxe packets for a bad ICRC').toBe(0)
      expect(sr!.drops.malformed).toBe(0)
      expect(rxe.rcvd_pkts, 'rxe received at least a SEND and an ACK per iteration').toBeGreaterThanOrEqual(ITERS * 2)
      const gap = udpIn(rxe) - (rxe.rcvd_pkts ?? 0)
      expect(gap, 'datagrams rxe dropped before counting them (bad ICRC or unknown QP)').toBeGreaterThanOrEqual(0)
      expect(gap, 'datagrams rxe dropped beyond late retransmissions of ours: bad ICRC').toBeLessThanOrEqual(sr!.retransmits)
      expect(rxe.retry_exceeded_err ?? 0).toBe(0)
    }, 400_000)
  }

  it('the guest ran every step; over all runs rxe counted every datagram but late retransmissions', async () => {
    const exit = await guest!.exited
    expect(exit.code, exit.stderr.slice(-2000)).toBe(0)
    expect(perStep).toHaveLength(STEPS.length)
    const total = (f: (p: (typeof perStep)[number]) => number): number => perStep.reduce((n, p) => n + f(p), 0)
    const gap = total((p) => udpIn(p.rxe) - (p.rxe.rcvd_pkts ?? 0))
    const retransmits = total((p) => p.softroce.retransmits)
    console.info(`[cli] ${STEPS.length} runs: rxe2 rcvd_pkts ${total((p) => p.rxe.rcvd_pkts ?? 0)}, UDP in ${total((p) => udpIn(p.rxe))}; ` +
      `softroce retransmits ${retransmits}; rxe retransmissions (completer_retry_err) ${total((p) => p.rxe.completer_retry_err ?? 0)}; ` +
      `duplicates rxe received ${total((p) => p.rxe.duplicate_request ?? 0)}`)
    expect(gap).toBeLessThanOrEqual(retransmits)
    expect(total((p) => p.softroce.drops.badIcrc ?? 0)).toBe(0)
  }, 300_000)
})
