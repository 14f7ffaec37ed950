/** `rdma-session bench` options: --mock-link is read by core's rate parser (b = bit, B = byte), bad rates are usage errors. */
import { describe, expect, it } from 'vitest'
import { UsageError, type CommandIo } from '../src/command.js'
import { parseBenchArgs } from '../src/commands/bench.js'
import { main } from '../src/dispatcher.js'

describe('bench options', () => {
  it('reads --mock-link like every rate in the SDK, defaulting to 1 Gbit/s', () => {
    expect(parseBenchArgs([])).toEqual({ out: 'rdma-session-bench', quick: false, mockLinkBytesPerSecond: 125e6 })
    expect(parseBenchArgs(['--mock-link', '100Mb/s']).mockLinkBytesPerSecond).toBe(12.5e6)
    expect(parseBenchArgs(['--mock-link=800Mbit/s']).mockLinkBytesPerSecond).toBe(100e6)
    expect(parseBenchArgs(['--mock-link', '100MB/s']).mockLinkBytesPerSecond).toBe(100e6)
    expect(parseBenchArgs(['--mock-link', '64MiB/s', '--quick', '--provider', 'mock']).mockLinkBytesPerSecond).toBe(64 * 2 ** 20)
  })

  it.each(['100mbps', '1G', 'fast', '0Gbps'])('refuses --mock-link %s as a usage error', (rate) => {
    expect(() => parseBenchArgs(['--mock-link', rate])).toThrow(UsageError)
    expect(() => parseBenchArgs(['--mock-link', rate])).toThrow(/--mock-link/)
  })

  it('prints the accepted units and exits 2 before running anything', async () => {
    let err = ''
    const io: CommandIo = { out: () => {}, err: (t) => (err += t), errIsTty: false, env: {}, cwd: process.cwd() }
    expect(await main(['bench', '--mock-link', '100mbps'], io)).toBe(2)
    expect(err).toMatch(/^rdma-session bench: --mock-link: cannot read rate '100mbps': units are case-sensitive and 'mbps' is ambiguous; write 'Mbps' \(bits\) or 'MBps' \(bytes\)\. .*one of: bit\/s, bps, b\/s/)
    expect(err).toContain('usage: rdma-session bench')
  })
})
