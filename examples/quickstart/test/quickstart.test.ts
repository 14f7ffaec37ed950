import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)

describe('quickstart example', () => {
  it('runs on the default provider and shows every step working', async () => {
    const { stdout } = await run(process.execPath, ['quickstart.mjs'], { cwd: new URL('..', import.meta.url).pathname, env: { ...process.env, RDMA_SESSION_PROVIDER: undefined } })
    expect(stdout).toMatch(/provider: mock/)
    expect(stdout).toMatch(/session created: [0-9a-f]{32} -> .*, encryption aes-256-gcm \(every packet sealed with AEAD\)/)
    expect(stdout).toMatch(/the session now has 2 QPs \(latency, bulk\)/)
    expect(stdout).toMatch(/write: .*all match/)
    expect(stdout).toContain('read: "hello from bob"')
    expect(stdout).toContain('bob received 4 bytes: "ping"')
    expect(stdout).toContain('previous value 5, counter now 12')
    expect(stdout).toContain('counter now 100')
    expect(stdout).toMatch(/striped write: 65536 bytes in 8 chunks over 2 QPs/)
    expect(stdout, 'the stats line counts no error (not 10, not 20)').toMatch(/ received, 0 errors,/)
    // Percentiles from the power-of-two histogram come with their bucket, and the estimate lies in it.
    const stats = /latency p50 (?:≈ ([\d.]+) (µs|ms|s) \(([\d.]+)–([\d.]+) (µs|ms|s)\)|([\d.]+) (µs|ms|s)), p99 [\d.≈ ]+(µs|ms|s)/.exec(stdout)
    expect(stats, stdout).not.toBeNull()
    if (stats![1] !== undefined) {
      const micros = (value: string, unit: string): number => Number(value) * (unit === 's' ? 1e6 : unit === 'ms' ? 1e3 : 1)
      const [estimate, low, high] = [micros(stats![1], stats![2]!), micros(stats![3]!, stats![5]!), micros(stats![4]!, stats![5]!)]
      // Printed to three digits: allow the rounding of each.
      expect(estimate).toBeGreaterThanOrEqual(low * 0.99)
      expect(estimate).toBeLessThanOrEqual(high * 1.01)
      if (low >= 1) expect(high / low).toBeLessThanOrEqual(2.05)
    }
    expect(stdout).toContain('closed:')
  })

  it('runs on softroce with RDMA_SESSION_PROVIDER=softroce (two UDP stacks on loopback, ephemeral ports)', async () => {
    const { stdout } = await run(process.execPath, ['quickstart.mjs'], { cwd: new URL('..', import.meta.url).pathname, env: { ...process.env, RDMA_SESSION_PROVIDER: 'softroce' } })
    expect(stdout).toMatch(/provider: softroce; alice at 127\.0\.0\.1:\d+, bob at 127\.0\.0\.1:\d+/)
    expect(stdout).toMatch(/encryption aes-256-gcm \(every packet sealed with AEAD\)/)
    expect(stdout).toMatch(/the session now has 2 QPs \(latency, bulk\)/)
    expect(stdout).toMatch(/write: .*all match/)
    expect(stdout).toContain('read: "hello from bob"')
    expect(stdout).toContain('bob received 4 bytes: "ping"')
    expect(stdout).toContain('counter now 100')
    expect(stdout).toMatch(/striped write: 65536 bytes in 8 chunks over 2 QPs/)
    expect(stdout, 'the stats line counts no error (not 10, not 20)').toMatch(/ received, 0 errors,/)
  })

  it('finds the provider installed for the example when run from the repository root (not its own folder)', async () => {
    // Without pnpm's NODE_PATH, which would reach the workspace's hoisted packages from anywhere.
    const { NODE_PATH: _, ...env } = process.env
    const root = fileURLToPath(new URL('../../..', import.meta.url))
    const { stdout } = await run(process.execPath, ['examples/quickstart/quickstart.mjs'], { cwd: root, env: { ...env, RDMA_SESSION_PROVIDER: 'softroce' } })
    expect(stdout).toMatch(/provider: softroce; alice at 127\.0\.0\.1:\d+/)
    expect(stdout, 'the stats line counts no error').toMatch(/ received, 0 errors,/)
  })

  it('names where it looked and the example\'s package when the provider is installed nowhere', async () => {
    const { NODE_PATH: _, ...env } = process.env
    const root = fileURLToPath(new URL('../../..', import.meta.url))
    const example = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '')
    const err = await run(process.execPath, ['examples/quickstart/quickstart.mjs'], { cwd: root, env: { ...env, RDMA_SESSION_PROVIDER: '@rdma-session/provider-not-installed' } }).catch((e: { stderr: string }) => e)
    const stderr = (err as { stderr: string }).stderr
    expect(stderr).toContain('ERR_PROVIDER_MISSING')
    expect(stderr).toContain(`from the entry script's folder ${example} and from the working directory ${root.replace(/\/$/, '')}`)
    expect(stderr).toContain(`pnpm add @rdma-session/provider-not-installed (in ${example}, the application's package)`)
  })

  it('says what to do when RDMA_SESSION_PROVIDER names a provider that cannot run here (not installed, or no RDMA device)', async () => {
    // Whether provider-verbs resolves depends on the install (pnpm's NODE_PATH reaches hoisted workspace packages).
    const err = await run(process.execPath, ['quickstart.mjs'], { cwd: new URL('..', import.meta.url).pathname, env: { ...process.env, RDMA_SESSION_PROVIDER: 'verbs' } }).catch((e: { stderr: string }) => e)
    const stderr = (err as { stderr: string }).stderr
    if (/ERR_PROVIDER_MISSING/.test(stderr)) expect(stderr).toContain('pnpm add @rdma-session/provider-verbs')
    else expect(stderr).toMatch(/ERR_(NO_DEVICE|ADDON_MISSING)[\s\S]*|Possible solutions:\n- /)
    expect(stderr).toMatch(/ERR_PROVIDER_MISSING|Possible solutions/)
  })
})
