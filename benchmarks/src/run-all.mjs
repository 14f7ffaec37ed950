// Runs every benchmark in its own node process (clean heap, --expose-gc where needed)
// and prints a one-line verdict per target. Exits 0 even when a target is missed: targets
// are reported, not enforced, since timing depends on the machine.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const here = dirname(fileURLToPath(import.meta.url))
const only = process.argv.slice(2)
const benches = [
  { file: 'core/add-qp-vs-new-session.mjs', flags: [] },
  { file: 'core/dispatch-overhead.mjs', flags: [] },
  { file: 'core/qp-scale.mjs', flags: ['--expose-gc'] },
  { file: 'control/join-vs-new-session.mjs', flags: [] },
  { file: 'control/handshake-old-vs-new.mjs', flags: [] },
  { file: 'softroce/write-throughput.mjs', flags: [] },
  { file: 'softroce/send-latency.mjs', flags: [] },
  { file: 'softroce/qos-isolation.mjs', flags: [] },
  { file: 'softroce/loss-goodput.mjs', flags: [] },
  { file: 'softroce/cm-connect.mjs', flags: [] },
  { file: 'softroce/cm-connect-guest.mjs', flags: [] },
  { file: 'softroce/qp-heap-vs-mock.mjs', flags: ['--expose-gc'] },
  // boots the rxe-vm QEMU guest (minutes under TCG); prints SKIPPED with the reason without it
  { file: 'softroce/guest-vs-rxe.mjs', flags: [] },
]
let failed = 0
for (const b of benches) {
  if (only.length > 0 && !only.some((o) => b.file.includes(o))) continue
  const r = spawnSync(process.execPath, [...b.flags, join(here, b.file)], { stdio: 'inherit' })
  if (r.status !== 0) {
    failed++
    console.error(`bench ${b.file} exited with ${r.status}`)
  }
}
process.exit(failed > 0 ? 1 : 0)
