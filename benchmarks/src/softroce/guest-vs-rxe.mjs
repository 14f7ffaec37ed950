// softroce against the Linux kernel's rxe, both inside the rxe-vm QEMU guest (tools/rxe-vm) in one
// run: boots the guest once with this repository shared and the host's node, and runs
// guest-write.mjs there (ib_write_bw -s 1048576 on rxe0 loopback, at rxe path MTUs 1024 and 4096,
// alternated with softroce RC WRITEs of 1 MiB between two node processes on the guest's loopback).
// Target (issue 14): softroce >= 1.5x kernel rxe, against the faster of rxe's two MTUs.
// The guest boots with the TSC as its clocksource (BENCH_GUEST_CLOCK=tsc, the default): under TCG
// the default is the HPET, where every clock read is an emulated MMIO access costing hundreds of
// microseconds on a loaded host; rxe works in the kernel on jiffies and does not notice, softroce
// reads the clock for its timers and pacing. BENCH_GUEST_CLOCK=hpet measures the stock guest.
// Needs root, /dev/net/tun and a built guest (tools/rxe-vm/build.sh) and `pnpm build`; without
// them it prints why it skipped and exits 0. Env: BENCH_GUEST_MIB, BENCH_GUEST_ROUNDS (passed on).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ensureBuilt, guestSupport, startGuest } from '../../../tools/rxe-vm/index.mjs'
import { fmt, report } from '../measure.mjs'

const TITLE = 'softroce vs kernel rxe inside the QEMU guest (1 MiB RC WRITE, loopback in the guest)'
const repo = fileURLToPath(new URL('../../../', import.meta.url))
const built = ['core', 'provider-interface', 'rc-engine', 'provider-softroce'].map((p) => `${repo}packages/${p}/dist/index.js`)

function skip(why) {
  report(TITLE, [`SKIPPED: ${why}`])
  process.exit(0)
}

function fail(why) {
  console.error(`guest-vs-rxe: ${why}`)
  process.exit(2)
}

const unsupported = guestSupport()
if (unsupported !== null) skip(unsupported)
const missing = built.filter((f) => !existsSync(f))
if (missing.length > 0) skip(`not built: ${missing.join(', ')} (run pnpm build)`)
try {
  await ensureBuilt() // ~0.2 s when current; rebuilds the initramfs when an input changed
} catch (err) {
  skip(`tools/rxe-vm/build.sh failed: ${String(err.message).split('\n')[0]}`)
}

const clock = process.env.BENCH_GUEST_CLOCK ?? 'tsc'
if (clock !== 'tsc' && clock !== 'hpet') fail(`BENCH_GUEST_CLOCK must be tsc or hpet (got ${clock})`)
// V8's compiling tiers: under TCG every piece of code V8 generates must be translated again by
// QEMU (and retranslated when V8 rewrites it); measured once, 8 MiB of 1 MiB WRITEs cost the
// sender 14.9 CPU s with V8's tiers and 2.0 s with Ignition alone, which runs them faster there. BENCH_GUEST_NODE_ARGS=none keeps
// V8's defaults (the flags go to both softroce processes; perftest is native code either way).
const nodeArgs = process.env.BENCH_GUEST_NODE_ARGS === 'none' ? '' : (process.env.BENCH_GUEST_NODE_ARGS ?? '--no-opt --no-sparkplug --no-maglev')
if (!/^[a-z0-9 =_-]*$/i.test(nodeArgs)) fail(`BENCH_GUEST_NODE_ARGS takes node flags only (got ${nodeArgs})`)
const env = ['BENCH_GUEST_MIB', 'BENCH_GUEST_ROUNDS'].filter((k) => /^\d+$/.test(process.env[k] ?? '')).map((k) => `${k}=${process.env[k]} `).join('') + (nodeArgs ? `BENCH_PEER_NODE_ARGS='${nodeArgs}' ` : '')
const t0 = Date.now()
let output = ''
const guest = await startGuest({
  command: `${env}node ${nodeArgs} benchmarks/src/softroce/guest-write.mjs`,
  share: repo,
  node: true,
  tap: false,
  ...(clock === 'tsc' ? { kernelArgs: 'clocksource=tsc tsc=reliable' } : {}),
  timeoutMs: 1_800_000,
  onOutput: (text) => {
    output += text
    if (process.env.BENCH_GUEST_VERBOSE === '1') process.stdout.write(text)
  },
})
const { code } = await guest.exited
const wall = (Date.now() - t0) / 1000
const line = output.split('\n').find((l) => l.startsWith('GUEST-RESULT '))
if (code !== 0 || line === undefined) {
  console.error(`guest run failed (exit ${code}, ${fmt(wall, 0)} s):\n${output.slice(-4000)}`)
  process.exit(1)
}
const r = JSON.parse(line.slice('GUEST-RESULT '.length))
const mb = (x) => `${fmt(x / 1e6, 1)} MB/s`
const sr = r.kinds.softroce
const rxeKinds = Object.entries(r.kinds).filter(([k]) => k.startsWith('rxe'))
const [bestName, best] = rxeKinds.reduce((a, b) => (b[1].rate > a[1].rate ? b : a))
const lines = [
  ...rxeKinds.map(([k, s]) => `kernel ${k.replace('rxe', 'rxe ib_write_bw,')}: ${mb(s.rate)} (rounds ${mb(s.min)}–${mb(s.max)}), guest CPU ${fmt(s.cpuPerGiB)} s/GiB`),
  `softroce, path MTU 4096 (${r.path}; helper ${r.helper}, ICRCs by ${r.icrcEngine}): ${mb(sr.rate)} (rounds ${mb(sr.min)}–${mb(sr.max)}), guest CPU ${fmt(sr.cpuPerGiB)} s/GiB (the sender process: ${fmt(100 * r.senderUserShare, 0)} % user, the rest in the kernel); ${r.retransmits} packets retransmitted after ${r.timeouts} ACK timeouts`,
  ...rxeKinds.map(([k, s]) => `softroce / ${k}: ${fmt(sr.rate / s.rate)}x`),
  `guest clocksource ${r.clocksource}: a clock read costs ${fmt(r.costs.clockReadUs)} µs; CRC-32 of a 4 KiB packet: zlib ${fmt(r.costs.zlibCrc4KiBUs, 1)} µs, the helper's ${r.costs.nativeCrc4KiBUs === undefined ? '-' : `${fmt(r.costs.nativeCrc4KiBUs, 1)} µs`}`,
  `softroce's node processes ran with ${nodeArgs ? `\`${nodeArgs}\`` : "V8's default tiers"} (BENCH_GUEST_NODE_ARGS)`,
  `${r.messages} x 1 MiB per measurement, median of ${r.rounds} rounds (order rotated each round); ${fmt(wall, 0)} s wall with boot (TCG: figures follow host load, the ratios less so)`,
]
report(TITLE, lines, { ok: sr.rate / best.rate >= 1.5, text: `softroce reaches ${fmt(sr.rate / best.rate)}x kernel rxe's ib_write_bw (${bestName}, the faster) in the same guest run (target >= 1.5x)` })
