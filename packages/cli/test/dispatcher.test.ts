import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { main } from '../src/dispatcher.js'
import type { CommandIo } from '../src/command.js'

function io(): CommandIo & { stdout: () => string; stderr: () => string } {
  let out = ''
  let err = ''
  return { out: (t) => (out += t), err: (t) => (err += t), errIsTty: false, env: {}, cwd: process.cwd(), stdout: () => out, stderr: () => err }
}

describe('rdma-session command line (doctor, bench, capture)', () => {
  it('lists doctor, bench and capture in the help', async () => {
    const x = io()
    expect(await main(['--help'], x)).toBe(0)
    expect(x.stdout()).toMatch(/doctor +check this machine/)
    expect(x.stdout()).toMatch(/bench +benchmark each provider/)
    expect(x.stdout()).toMatch(/capture +run a short softroce session/)
  })

  it('rejects unknown options with the usage and exit code 2', async () => {
    const x = io()
    expect(await main(['doctor', '--bogus'], x)).toBe(2)
    expect(x.stderr()).toMatch(/rdma-session doctor: .*bogus[\s\S]*usage: rdma-session doctor/)
    const y = io()
    expect(await main(['doctor', '--require', 'infiniband-magic'], y)).toBe(2)
    expect(y.stderr()).toContain("unknown provider 'infiniband-magic'")
  })

  it('doctor --json is machine-readable; --require fails when a provider is not usable', async () => {
    const x = io()
    expect(await main(['doctor', '--json', '--require', 'mock'], x)).toBe(0)
    const report = JSON.parse(x.stdout())
    expect(report.providers.map((p: { provider: string }) => p.provider)).toEqual(['mock', 'softroce', 'verbs'])
    const verbsUsable = report.providers.find((p: { provider: string }) => p.provider === 'verbs').usable
    const y = io()
    expect(await main(['doctor', '--require', 'verbs'], y)).toBe(verbsUsable ? 0 : 1)
    if (!verbsUsable) expect(y.stderr()).toContain('required provider not usable here: verbs')
  })

  it('bench --provider mock --quick prints the table, progress goes to stderr', async () => {
    const x = io()
    const out = mkdtempSync(join(tmpdir(), 'bench-cli-'))
    expect(await main(['bench', '--provider', 'mock', '--quick', '--out', out], x)).toBe(0)
    expect(x.stdout()).toMatch(/QoS isolation/)
    expect(x.stdout()).toContain(`wrote ${join(out, 'throughput.svg')}`)
    expect(x.stderr()).toMatch(/\[#+\] 5\/5 mock: qos isolation/)
  })

  it('capture prints where the pcap is and how to open it', async () => {
    const x = io()
    const file = join(mkdtempSync(join(tmpdir(), 'capture-cli-')), 'c.pcap')
    expect(await main(['capture', file], x)).toBe(0)
    expect(x.stdout()).toMatch(new RegExp(`wrote \\d+ packets to ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
    expect(x.stdout()).toMatch(/tshark -r /)
    expect(x.stdout()).toMatch(/wireshark /)
  })
})
