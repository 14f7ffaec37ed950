// Connection setup toward the rxe-vm guest: provider-softroce on the host (in the guest's netns,
// 10.77.0.1) connecting to a provider-verbs listener on the guest's kernel rxe (rxe2, 10.77.0.2)
// through rdma_cm vs through the ws control plane, in the same run (guest/cm-bench-host.mjs times
// them interleaved; guest/cm-bench-listener.mjs listens both ways in one verbs context):
//   - a session of one QP: ctx.connect('rdma-cm://…') vs ctx.connect('ws://…') (PSK, no encryption)
//   - one plain rdma_cm QP (ctx.connectQp, as rping connects) vs the same ws session
// Each figure is the median time of one connect() (until it resolves: the QP in RTS on the host).
// The guest runs under QEMU (TCG without KVM), so its side is slow: compare the ratio, not the
// times, with the loopback figures of cm-connect.mjs. Without the guest (no root, QEMU, built
// rxe-vm image, provider-verbs addon) it prints why and exits 0.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ensureBuilt, hostSupport, startGuest } from '../../../tools/rxe-vm/index.mjs'
import { roceSocketArgs } from '../../../tools/rxe-vm/roce-socket.mjs'
import { fmt, report } from '../measure.mjs'

const repo = fileURLToPath(new URL('../../../', import.meta.url))
const verbsDist = `${repo}packages/provider-verbs/dist/index.js`
const TITLE = 'connection setup toward the rxe-vm guest: softroce (host) -> provider-verbs (guest kernel rxe), rdma_cm vs the ws control plane'

function skip(why) {
  report(TITLE, [`skipped: ${why}`])
  process.exit(0)
}
const support = hostSupport()
if (!support.ok) skip(support.reasons.join('; '))
if (!existsSync(verbsDist)) skip(`${verbsDist} is missing (pnpm build; provider-verbs needs libibverbs-dev and librdmacm-dev)`)
try {
  const { resolveAddonPath } = await import(verbsDist)
  resolveAddonPath()
} catch (err) {
  skip(`the provider-verbs addon is neither built nor prebuilt (${String(err.message).split('\n')[0]})`)
}
await ensureBuilt()

let console_ = ''
let ready
const up = new Promise((resolve) => (ready = resolve))
const guest = await startGuest({
  command: 'node benchmarks/src/softroce/guest/cm-bench-listener.mjs',
  share: repo,
  node: true,
  timeoutMs: 900_000,
  onOutput: (text) => {
    console_ += text
    if (console_.includes('CM-BENCH-READY')) ready()
  },
})
try {
  await Promise.race([up, guest.exited.then((e) => Promise.reject(new Error(`the guest ended (exit ${e.code}) before its listener was up:\n${e.output.slice(-2000)}`)))])
  const host = fileURLToPath(new URL('./guest/cm-bench-host.mjs', import.meta.url))
  const { code, stdout, stderr } = await guest.run('perl', roceSocketArgs(4, host), { timeoutMs: 600_000 })
  const line = stdout.trim().split('\n').pop() ?? ''
  if (code !== 0 || !line.startsWith('{')) throw new Error(`the host side exited ${code}:\n${stdout}\n${stderr}\nguest console:\n${console_.slice(-2000)}`)
  const r = JSON.parse(line)
  report(TITLE, [
    `ws control plane, ctx.connect('ws://…') (TCP + ws + Noise PSK handshake + session with 1 QP): ${fmt(r.wsMs, 1)} ms per session`,
    `rdma_cm, ctx.connect('rdma-cm://…') to ctx.listen({ cm }) (session with 1 QP):               ${fmt(r.cmSessionMs, 1)} ms per session`,
    `a session over rdma_cm takes ${fmt(r.cmSessionMs / r.wsMs)}x the time of one over ws (median connect of ${r.rounds} rounds of ${r.n}; run ratio incl. teardown ${fmt(r.sessionRatio)})`,
    `ws control plane again (same run, interleaved with the next):                                 ${fmt(r.ws2Ms, 1)} ms per session`,
    `rdma_cm, ctx.connectQp('rdma-cm://…') (one plain QP, as rping connects):                      ${fmt(r.cmQpMs, 1)} ms per connection`,
    `a plain rdma_cm QP takes ${fmt(r.cmQpMs / r.ws2Ms)}x the time of a ws session (run ratio incl. teardown ${fmt(r.plainRatio)})`,
  ])
} finally {
  await guest.kill()
}
