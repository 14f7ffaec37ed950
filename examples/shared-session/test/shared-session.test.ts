import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const cwd = new URL('..', import.meta.url).pathname

describe('shared-session example', () => {
  it('two processes share one session through the daemon (softroce, the default here and with RDMA_SESSION_PROVIDER=softroce)', async () => {
    for (const provider of ['', 'softroce']) {
      const { stdout } = await run(process.execPath, ['shared-session.mjs'], { cwd, env: { ...process.env, RDMA_SESSION_PROVIDER: provider }, timeout: 60_000 })
      const id = /process A \(pid (\d+)\): created session ([0-9a-f]{32}) through the daemon, aes-256-gcm, latency QP (\d+)/.exec(stdout)
      expect(id, stdout).not.toBeNull()
      const [, pidA, sessionId, qpA] = id!
      const joined = new RegExp(`process B \\(pid (\\d+)\\): query 127\\.0\\.0\\.1:\\d+ -> ${sessionId}; joined it and added bulk QP (\\d+)`).exec(stdout)
      expect(joined, stdout).not.toBeNull()
      const [, pidB, qpB] = joined!
      expect(pidB).not.toBe(pidA)
      expect(stdout).toContain('same session: yes')
      expect(stdout).toMatch(new RegExp(`daemon sessions: ${sessionId} -> 127\\.0\\.0\\.1:\\d+ processes 2, QPs 2`))
      expect(stdout).toContain(`peer: session ${sessionId} has 2 QPs`)
      // Each process wrote over its own QP into the peer's memory.
      expect(stdout).toContain(`peer inbox[0]:    "hello from process A (pid ${pidA}) over QP ${qpA}"`)
      expect(stdout).toContain(`peer inbox[4096]: "hello from process B (pid ${pidB}) over QP ${qpB}"`)
      expect(stdout).toContain('processes exited; peer sessions left: none')
      expect(stdout).toMatch(/daemon stopped\n$/)
    }
  }, 120_000)

  it('refuses the mock, whose fabric cannot span processes, and says what to use', async () => {
    const err = await run(process.execPath, ['shared-session.mjs'], { cwd, env: { ...process.env, RDMA_SESSION_PROVIDER: 'mock' } }).catch((e: { code: number; stderr: string }) => e)
    expect((err as { code: number }).code).toBe(2)
    expect((err as { stderr: string }).stderr).toMatch(/mock fabric lives inside one process.*RDMA_SESSION_PROVIDER=softroce/)
  })
})
