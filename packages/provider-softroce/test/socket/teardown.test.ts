// Devices on the native receive path left open at a worker's process.exit, a worker's
// terminate() and the main thread's exit: the process ends normally, no crash (node unloads an
// addon of a worker once its cleanup hooks are done; a socket watcher closing after that would
// call into unmapped code).
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, expect, it } from 'vitest'
import { bundleHost } from '../bundle-host.js'
import { ensureAddonBuilt } from './helpers.js'

const here = dirname(fileURLToPath(import.meta.url))
let bundle = ''

beforeAll(async () => {
  const state = ensureAddonBuilt()
  if (!state.loaded) throw new Error(state.why)
  bundle = await bundleHost(join(here, 'teardown-host.ts'))
}, 200_000)

it('open devices at worker exit, worker terminate and process exit: clean exits, no crash', () => {
  const r = spawnSync(process.execPath, [bundle], { encoding: 'utf8', timeout: 30_000 })
  expect(r.signal, r.stderr).toBeNull()
  expect(r.stdout).toContain('worker exit: receive path native, exit code 0')
  expect(r.stdout).toContain('worker terminate: receive path native, exit code 1')
  expect(r.stdout).toContain('main: receive path native')
  expect(r.status, r.stdout + r.stderr).toBe(0)
})
