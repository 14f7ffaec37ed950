/**
 * Wire compatibility with Linux kernel soft-RoCE: a softroce QP (in the rxe-vm guest's network
 * namespace, on 10.77.0.1 / fd77::1 port 4791) against rc_peer on the guest's rxe2, over IPv4
 * and IPv6: every opcode in both directions, byte-exact, with no ICRC drops on either side.
 *
 * Needs the rxe-vm build (tools/rxe-vm/build.sh; it is not built here) plus root, /dev/net/tun
 * and perl; skipped otherwise, with the reason printed. The softroce side runs in a child
 * process (bundled with tsup) because the addresses exist only inside the namespace, under a
 * perl launcher that creates the socket with IP_PMTUDISC_DO (IPv4: the kernel then writes IP ID
 * 0, the header our ICRC assumes) or UDP_NO_CHECK6_RX (IPv6: rxe sends UDP checksum 0).
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { guestSupport, startGuest, type Guest } from '../../../../tools/rxe-vm/index.mjs'
import { environmentSkip } from '../../../../tools/test-env.mjs'

const here = fileURLToPath(new URL('.', import.meta.url))
const pkg = join(here, '..', '..')

const why = environmentSkip('softroce <-> kernel rxe interop', guestSupport())

// Makes the UDP socket, sets the interop option, binds it, clears close-on-exec, execs node on the child.
const LAUNCHER = `use Socket qw(:all); use Fcntl; my ($v6, $port, $addr) = splice(@ARGV, 0, 3);
  socket(my $s, $v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0) or die "socket: $!";
  $v6 ? setsockopt($s, 17, 102, 1) : setsockopt($s, IPPROTO_IP, 10, 2) or die "setsockopt: $!";
  bind($s, $v6 ? pack_sockaddr_in6($port, inet_pton(AF_INET6, $addr)) : pack_sockaddr_in($port, inet_aton($addr))) or die "bind $addr: $!";
  fcntl($s, F_SETFD, 0) or die; $ENV{SOFTROCE_FD} = fileno($s); exec(@ARGV) or die "exec: $!"`

interface ChildResult {
  checks: { name: string; ok: boolean; detail?: string }[]
  counters: { drops: Record<string, number>; ipv4IdSolved: number; packetsReceived: number; retransmits: number }
  peerCounters: Record<string, number>
  batchedIo: { send: string; receive: string; receiveRuns?: boolean; stats: { gsoMessages: number; gsoSegments: number; runs: number; runPackets: number; receiveRuns?: number; receiveRunPackets?: number } } | null
}

describe.skipIf(Boolean(why))('kernel rxe interop (rxe-vm guest)', () => {
  let guest: Guest | null = null
  let child = ''

  beforeAll(async () => {
    const { build } = await import('tsup')
    const outDir = join(pkg, 'node_modules', '.softroce-interop')
    mkdirSync(outDir, { recursive: true })
    await build({
      entry: { 'rxe-child': join(here, 'interop', 'rxe-child.ts') }, outDir, format: ['esm'], platform: 'node', target: 'node20',
      dts: false, sourcemap: false, silent: true, config: false, splitting: false, clean: false, external: ['@rdma-session/core'],
      outExtension: () => ({ js: '.mjs' }),
    })
    child = join(outDir, 'rxe-child.mjs')
    guest = await startGuest({ command: 'rc_peer -l 18600 -g 1 & rc_peer -l 18601 -g 2 & wait', timeoutMs: 100_000 })
    await guest.ready
  }, 90_000)

  afterAll(async () => {
    await guest?.kill()
  })

  async function runChild(fam: 4 | 6): Promise<ChildResult> {
    const args = ['-e', LAUNCHER, fam === 6 ? '1' : '0', '4791', fam === 4 ? '10.77.0.1' : 'fd77::1', process.execPath, child, String(fam), fam === 4 ? '18600' : '18601']
    const { code, stdout: out, stderr: err } = await guest!.run('perl', args)
    const line = out.trim().split('\n').pop() ?? ''
    if (code !== 0 || !line.startsWith('{')) throw new Error(`softroce child (IPv${fam}) exit ${code}:\n${out}\n${err}`)
    return JSON.parse(line) as ChildResult
  }

  /** Packets softroce sent in the IPv4 run (rxe's rcvd_pkts adds up over both runs). */
  let sentV4: number | null = null

  for (const fam of [4, 6] as const) {
    it(`IPv${fam}: every opcode both ways between softroce and kernel rxe, byte-exact, no ICRC drops`, async () => {
      const r = await runChild(fam)
      console.info(`[softroce] IPv${fam} interop: softroce ${JSON.stringify(r.counters)}; rxe ${JSON.stringify(r.peerCounters)}; batched I/O ${JSON.stringify(r.batchedIo)}`)
      expect(r.checks.filter((c) => !c.ok), JSON.stringify(r.checks)).toEqual([])
      expect(r.checks.length).toBe(18)
      expect(r.counters.drops.badIcrc, 'softroce dropped rxe packets for a bad ICRC').toBe(0)
      expect(r.counters.drops.malformed).toBe(0)
      if (fam === 4) expect(r.counters.ipv4IdSolved, "rxe's IPv4 IDs were solved").toBeGreaterThan(0)
      // rxe counts what it received; a packet it rejected (bad ICRC) never reaches rcvd_pkts.
      if (r.peerCounters.rcvd_pkts !== undefined) expect(r.peerCounters.rcvd_pkts).toBeGreaterThan(50)
      // The batched path was on: multi-packet messages left as UDP GSO messages, whose IPv4
      // segments the kernel numbers 0, 1, 2, ... (their ICRCs are made for those IDs), and rxe took
      // every packet (rcvd_pkts counts the packets that passed its ICRC check; it adds up over
      // both runs, IPv4 first).
      expect(r.batchedIo?.send).toBe('gso')
      // Receive runs were on (whether rxe's packets came in batches that make runs depends on
      // timing: the log line above shows receiveRunPackets).
      expect(r.batchedIo?.receiveRuns).toBe(true)
      expect(r.batchedIo!.stats.gsoSegments, 'packets sent in UDP GSO messages').toBeGreaterThan(0)
      // Middle packets of multi-packet messages left as runs framed by the helper (send-run.ts).
      expect(r.batchedIo!.stats.runs, 'runs framed by the helper').toBeGreaterThan(0)
      const sent = (r.counters as unknown as { packetsSent: number }).packetsSent
      if (fam === 4) sentV4 = sent
      if (r.peerCounters.rcvd_pkts !== undefined && (fam === 4 || sentV4 !== null)) {
        expect(r.peerCounters.rcvd_pkts, 'rxe accepted every packet softroce sent').toBe(sent + (fam === 6 ? sentV4! : 0))
      }
      if (r.peerCounters.rcvd_seq_err !== undefined) expect(r.peerCounters.rcvd_seq_err, 'rxe saw no PSN gaps').toBe(0)
    }, 60_000)
  }
})
