#!/usr/bin/env node
// Host side of `pnpm --filter @rdma-session/provider-verbs bench`: boots the rxe-vm guest with the
// repo shared and the host's node, runs bench/write-bench.mjs there (provider-verbs vs
// ib_write_lat / ib_write_bw on rxe0 in the same run) and prints its report. Needs root + QEMU
// (tools/rxe-vm) and a built package (pnpm build). Extra arguments go to write-bench.mjs.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ensureBuilt, hostSupport, startGuest } from '../../../tools/rxe-vm/index.mjs'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const repo = fileURLToPath(new URL('../../..', import.meta.url))
const support = hostSupport()
if (!support.ok) {
  console.error(`bench needs the rxe-vm guest: ${support.reasons.join('; ')}`)
  process.exit(2)
}
if (!existsSync(`${pkg}dist/index.js`)) {
  console.error(`bench: ${pkg}dist/index.js is missing; run pnpm build (needs libibverbs-dev)`)
  process.exit(2)
}
try {
  const { resolveAddonPath } = await import('../dist/index.js')
  resolveAddonPath()
} catch (err) {
  console.error(`bench: the addon is neither built nor prebuilt (${err.message.split('\n')[0]}); run pnpm build (needs libibverbs-dev)`)
  process.exit(2)
}
await ensureBuilt()
const args = process.argv.slice(2).map((a) => `'${a.replace(/'/g, '')}'`).join(' ')
const t0 = Date.now()
const guest = await startGuest({
  command: `cd packages/provider-verbs && node bench/write-bench.mjs ${args}`,
  share: repo,
  node: true,
  tap: false,
  timeoutMs: 900_000,
  onOutput: (text) => process.stdout.write(text),
})
const { code } = await guest.exited
console.log(`\nbench: guest exit ${code}, ${((Date.now() - t0) / 1000).toFixed(1)} s wall (boot included)`)
process.exit(code ?? 1)
