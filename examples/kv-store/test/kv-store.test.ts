import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const cwd = new URL('..', import.meta.url).pathname

async function check(provider: string) {
  const { stdout } = await run(process.execPath, ['kv-store.mjs'], { cwd, env: { ...process.env, RDMA_SESSION_PROVIDER: provider } })
  const line = (re: RegExp) => {
    const m = re.exec(stdout)
    expect(m, `output lacks ${re}:\n${stdout}`).not.toBeNull()
    return m!.slice(1).map(Number)
  }
  expect(stdout).toContain(`provider: ${provider || 'mock'};`)
  const [gets1, hits1, lookups1, wrong] = line(/round 1: (\d+) GETs, (\d+) hits served by one RDMA READ each, (\d+) lookups \(first access of a key\), (\d+) wrong values/)
  expect(gets1).toBe(1000)
  expect(wrong).toBe(0)
  expect(hits1! + lookups1!).toBe(1000) // every GET is either a cached READ or a lookup
  expect(lookups1).toBeLessThanOrEqual(100) // at most one lookup per key
  expect(hits1).toBeGreaterThan(800)
  const [stale, fresh] = line(/round 2: server rewrote 10 keys; the client read (\d+) stale slots, looked them up again and got (\d+)\/10 new values/)
  expect(fresh).toBe(10)
  expect(stale).toBeGreaterThan(0) // hot keys were cached, so their old slots were read and found rewritten
  expect(stdout).toContain('missing key: undefined (one lookup, no READ)')
  const [gets, hits, , lookups, missing, serverLookups] = line(/totals: (\d+) GETs, (\d+) hits \(([\d.]+)%\), (\d+) lookups, \d+ stale, (\d+) missing; server CPU answered (\d+) lookups/)
  expect([gets, missing]).toEqual([1011, 1])
  expect(lookups).toBe(lookups1! + 10 + 1) // round 2: one lookup per rewritten key (stale or never cached), one for the missing key
  expect(serverLookups, 'the server CPU saw only lookups, never the READ hits').toBe(lookups)
  expect(hits! + lookups!).toBe(gets)
  line(/session stats: \d+ ops, \d+ bytes received, 0 errors/)
  expect(stdout).toMatch(/closed\n$/)
}

describe('kv-store example', () => {
  it('on the mock: clients READ values from the server table after one lookup per key', () => check(''))
  it('on softroce with RDMA_SESSION_PROVIDER=softroce', () => check('softroce'))
})
