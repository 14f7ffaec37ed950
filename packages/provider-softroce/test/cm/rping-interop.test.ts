/**
 * rdma_cm interop with rdma-core's rping on the Linux kernel's rxe (rxe-vm guest over the tap
 * link): `rping -s` in the guest with softroce on the host as client, and softroce listening with
 * `rping -c` in the guest, over IPv4 and IPv6; -V verifies the data, -v prints it, several
 * iterations, clean disconnect on both sides. The softroce side records a capture that tshark
 * must decode as the CM exchange (REQ, REP/MRA, RTU, DREQ, DREP) with no malformed frame.
 *
 * Needs the rxe-vm build, root, /dev/net/tun and perl; skipped otherwise (environmentSkip).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { guestSupport, startGuest, type Guest } from '../../../../tools/rxe-vm/index.mjs'
import { environmentSkip } from '../../../../tools/test-env.mjs'
import { tshark, tsharkExpert } from '../wire/tshark.js'
import { pingData } from './rping-peer.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const pkg = join(here, '..', '..')
const why = environmentSkip('softroce rdma_cm <-> rping on kernel rxe', guestSupport())
const COUNT = 4

// Makes the UDP socket on port 4791 (IP_PMTUDISC_DO / UDP_NO_CHECK6_RX), clears close-on-exec, execs node on the child.
const LAUNCHER = `use Socket qw(:all); use Fcntl; my ($v6, $port, $addr) = splice(@ARGV, 0, 3);
  socket(my $s, $v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0) or die "socket: $!";
  $v6 ? setsockopt($s, 17, 102, 1) : setsockopt($s, IPPROTO_IP, 10, 2) or die "setsockopt: $!";
  bind($s, $v6 ? pack_sockaddr_in6($port, inet_pton(AF_INET6, $addr)) : pack_sockaddr_in($port, inet_aton($addr))) or die "bind $addr: $!";
  fcntl($s, F_SETFD, 0) or die; $ENV{SOFTROCE_FD} = fileno($s); exec(@ARGV) or die "exec: $!"`

/** The guest's script: per family, rping -s (softroce connects), then rping -c retried until softroce listens. */
function guestScript(): string {
  const phase = (fam: 4 | 6): string => {
    const g = fam === 4 ? '10.77.0.2' : 'fd77::2'
    const h = fam === 4 ? '10.77.0.1' : 'fd77::1'
    return `rping -s -a ${g} -p ${7470 + fam} -v -V -C ${COUNT}; echo "RPING_S${fam}_EXIT=$?"; ` +
      `ok=1; for i in $(seq 1 240); do if rping -c -a ${h} -p ${7480 + fam} -v -V -C ${COUNT}; then ok=0; break; fi; sleep 0.5; done; echo "RPING_C${fam}_EXIT=$ok"`
  }
  const core = `ok=1; for i in $(seq 1 240); do if rping -c -a 10.77.0.1 -p 7494 -v -V -C ${COUNT}; then ok=0; break; fi; sleep 0.5; done; echo "RPING_CORE_EXIT=$ok"`
  return `${phase(4)}; ${phase(6)}; ${core}`
}

interface ChildOut {
  result: { pings: number; verified: number; lines: string[]; disconnect: string } & { error?: string }
  ms: number
  cm: { sent: Record<string, number>; received: Record<string, number>; drops: Record<string, number>; retransmits: number }
  drops: Record<string, number>
}

describe.skipIf(Boolean(why))('rdma_cm: softroce <-> rping on kernel rxe (rxe-vm guest)', () => {
  let guest: Guest | null = null
  let child = ''
  let console_ = ''
  let dir = ''

  beforeAll(async () => {
    const { build } = await import('tsup')
    const outDir = join(pkg, 'node_modules', '.softroce-interop')
    mkdirSync(outDir, { recursive: true })
    await build({
      entry: { 'rping-child': join(here, 'interop', 'rping-child.ts') }, outDir, format: ['esm'], platform: 'node', target: 'node20',
      dts: false, sourcemap: false, silent: true, config: false, splitting: false, clean: false, external: ['@rdma-session/core'],
      outExtension: () => ({ js: '.mjs' }),
    })
    child = join(outDir, 'rping-child.mjs')
    dir = mkdtempSync(join(tmpdir(), 'softroce-rping-'))
    guest = await startGuest({ command: guestScript(), timeoutMs: 600_000, onOutput: (t) => (console_ += t) })
    await guest.ready
  }, 180_000)

  afterAll(async () => {
    await guest?.kill()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  async function runChild(fam: 4 | 6, role: 'client' | 'server' | 'core-server', port: number, capture: string): Promise<ChildOut> {
    const args = ['-e', LAUNCHER, fam === 6 ? '1' : '0', '4791', fam === 4 ? '10.77.0.1' : 'fd77::1', process.execPath, child, String(fam), role, String(port), String(COUNT)]
    const { code, stdout, stderr } = await guest!.run('perl', args, { env: { ...process.env, SOFTROCE_CAPTURE: capture }, timeoutMs: 240_000 })
    const line = stdout.trim().split('\n').pop() ?? ''
    if (code !== 0 || !line.startsWith('{')) throw new Error(`rping child (IPv${fam} ${role}) exit ${code}:\n${stdout}\n${stderr}`)
    return JSON.parse(line) as ChildOut
  }

  async function guestMarker(name: string): Promise<string> {
    const re = new RegExp(`${name}=(\\d+)`)
    const deadline = Date.now() + 120_000
    for (;;) {
      const m = re.exec(console_)
      if (m) return m[1]!
      if (Date.now() > deadline) throw new Error(`no ${name} in the guest console:\n${console_.slice(-4000)}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** tshark decodes every CM MAD of the capture; returns the attribute IDs in order. */
  function cmExchange(capture: string): string[] {
    const frames = tshark(capture, { fields: ['frame.number', 'infiniband.bth.opcode', 'infiniband.deth.q_key', 'infiniband.mad.mgmtclass', 'infiniband.mad.attributeid', '_ws.malformed', '_ws.expert'] })
    expect(frames.filter((f) => f['_ws.malformed'] !== undefined), 'malformed frames').toEqual([])
    const mads = frames.filter((f) => f['infiniband.mad.attributeid'] !== undefined)
    for (const m of mads) {
      expect(m['infiniband.bth.opcode']?.[0]).toBe('100')
      expect(m['infiniband.deth.q_key']?.[0]).toBe('0x0000000080010000')
      expect(m['infiniband.mad.mgmtclass']?.[0]).toBe('0x07')
    }
    expect(tsharkExpert(capture).filter((l) => /malformed|error/i.test(l))).toEqual([])
    return mads.map((m) => m['infiniband.mad.attributeid']![0]!)
  }

  for (const fam of [4, 6] as const) {
    it(`IPv${fam}: rping -s in the guest, softroce connects as client: ${COUNT} pings verified, clean disconnect`, async () => {
      const capture = join(dir, `client-v${fam}.pcap`)
      const out = await runChild(fam, 'client', 7470 + fam, capture)
      console.info(`[rping] IPv${fam} softroce client: ${JSON.stringify({ ms: Math.round(out.ms), connectMs: Math.round((out.result as { connectMs?: number }).connectMs ?? -1), sent: out.cm.sent, received: out.cm.received, retransmits: out.cm.retransmits })}`)
      expect(out.result.error).toBeUndefined()
      expect(out.result).toMatchObject({ pings: COUNT, verified: COUNT, disconnect: 'local' })
      expect(await guestMarker(`RPING_S${fam}_EXIT`)).toBe('0')
      for (let i = 0; i < COUNT; i++) expect(console_).toContain(`server ping data: ${pingData(i, 64).subarray(0, 63).toString('latin1')}`)
      expect(console_).toContain('server DISCONNECT EVENT')
      expect(out.cm.received.REP).toBeGreaterThanOrEqual(1)
      expect(out.cm.received.DREP).toBeGreaterThanOrEqual(1)
      expect(out.drops.badIcrc).toBe(0)
      const ids = cmExchange(capture)
      for (const id of ['0x0010', '0x0013', '0x0014', '0x0015', '0x0016']) expect(ids, `attribute ${id} in ${ids.join(',')}`).toContain(id)
    }, 300_000)

    it(`IPv${fam}: softroce listens, rping -c in the guest connects: ${COUNT} pings verified, clean disconnect`, async () => {
      const capture = join(dir, `server-v${fam}.pcap`)
      const out = await runChild(fam, 'server', 7480 + fam, capture)
      console.info(`[rping] IPv${fam} softroce server: ${JSON.stringify({ ms: Math.round(out.ms), sent: out.cm.sent, received: out.cm.received, retransmits: out.cm.retransmits })}`)
      expect(out.result.error).toBeUndefined()
      expect(out.result).toMatchObject({ pings: COUNT, disconnect: 'remote' })
      expect(await guestMarker(`RPING_C${fam}_EXIT`)).toBe('0')
      for (let i = 0; i < COUNT; i++) expect(console_).toContain(`ping data: ${pingData(i, 64).subarray(0, 63).toString('latin1')}`)
      expect(out.result.lines[0]).toBe(`server ping data: ${pingData(0, 64).subarray(0, 63).toString('latin1')}`)
      expect(out.cm.sent.REP).toBeGreaterThanOrEqual(1)
      expect(out.cm.received.RTU).toBeGreaterThanOrEqual(1)
      expect(out.cm.sent.DREP).toBeGreaterThanOrEqual(1)
      const ids = cmExchange(capture)
      for (const id of ['0x0010', '0x0013', '0x0014', '0x0015', '0x0016']) expect(ids, `attribute ${id} in ${ids.join(',')}`).toContain(id)
    }, 300_000)
  }

  it(`IPv4: core's ctx.listen({ cm }) serves rping -c from the guest as a lone QP: ${COUNT} pings verified, clean disconnect`, async () => {
    const capture = join(dir, 'core-server-v4.pcap')
    const out = await runChild(4, 'core-server', 7494, capture)
    expect(out.result.error).toBeUndefined()
    expect(out.result).toMatchObject({ pings: COUNT, disconnect: 'remote' })
    expect(await guestMarker('RPING_CORE_EXIT')).toBe('0')
    expect(out.result.lines[0]).toBe(`server ping data: ${pingData(0, 64).subarray(0, 63).toString('latin1')}`)
    expect(out.cm.sent.REP).toBeGreaterThanOrEqual(1)
    expect(out.cm.received.RTU).toBeGreaterThanOrEqual(1)
    expect(out.cm.sent.DREP).toBeGreaterThanOrEqual(1)
  }, 300_000)
})
