/** What every command shares: help <command>, unknown providers (exit 2, did you mean), a missing daemon (exit 1, how to start one). */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { main } from '../src/dispatcher.js'
import { COMMANDS } from '../src/commands/index.js'
import type { CommandIo } from '../src/command.js'

function io(env: NodeJS.ProcessEnv = {}): CommandIo & { stdout: () => string; stderr: () => string } {
  let out = ''
  let err = ''
  return { out: (t) => (out += t), err: (t) => (err += t), errIsTty: false, env, cwd: process.cwd(), stdout: () => out, stderr: () => err }
}

describe('help', () => {
  it("'help <command>' prints that command's usage, like '<command> --help'", async () => {
    for (const c of COMMANDS) {
      const x = io()
      expect(await main(['help', c.name], x)).toBe(0)
      const y = io()
      expect(await main([c.name, '--help'], y)).toBe(0)
      expect(x.stdout()).toBe(c.usage)
      expect(y.stdout()).toBe(c.usage)
    }
  })
  it('an unknown command or help topic: exit 2 with a did-you-mean', async () => {
    const x = io()
    expect(await main(['help', 'docter'], x)).toBe(2)
    expect(x.stderr()).toContain("unknown command 'docter'; did you mean 'doctor'?")
    const y = io()
    expect(await main(['sesions'], y)).toBe(2)
    expect(y.stderr()).toContain("did you mean 'sessions'?")
    const z = io()
    expect(await main(['--help'], z)).toBe(0)
    expect(z.stdout()).toContain("rdma-session help <command>")
  })
})

describe('unknown providers read the same in every command', () => {
  it('doctor --require and bench --provider: exit 2, the same message, nothing written', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'bench-typo-')), 'out')
    const runs = [['doctor', '--require', 'SoftRoCE'], ['bench', '--provider', 'SoftRoCE', '--out', out]]
    for (const argv of runs) {
      const x = io()
      expect(await main(argv, x), argv.join(' ')).toBe(2)
      expect(x.stderr()).toContain(`rdma-session ${argv[0]}: unknown provider 'SoftRoCE'; did you mean 'softroce'? (known providers: mock, softroce, verbs)`)
    }
    expect(existsSync(out)).toBe(false)
    const y = io()
    expect(await main(['bench', '--provider', 'nosuch', '--out', out], y)).toBe(2)
    expect(y.stderr()).toContain("unknown provider 'nosuch' (known providers: mock, softroce, verbs)")
    expect(existsSync(out)).toBe(false)
  })
})

describe('no daemon', () => {
  it('sessions list and query: exit 1, ERR_DAEMON_MISSING, and how to start one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'no-daemon-'))
    const socket = join(dir, 'd.sock')
    for (const argv of [['sessions'], ['sessions', 'list'], ['sessions', 'query', '--remote', '10.0.0.2:4791']]) {
      const x = io({ RDMA_SESSION_SOCKET: socket })
      expect(await main(argv, x), argv.join(' ')).toBe(1)
      expect(x.stderr()).toBe(`rdma-session sessions: ERR_DAEMON_MISSING: no session daemon is running here (no socket at ${socket}); start one with 'rdma-session daemon' (in another terminal, or as a service), or point to it with --socket/--token-file or RDMA_SESSION_SOCKET\n`)
    }
    // A token left behind by a daemon that is gone: the same error.
    writeFileSync(`${socket}.token`, `${'ab'.repeat(32)}\n`, { mode: 0o600 })
    const y = io({ RDMA_SESSION_SOCKET: socket })
    expect(await main(['sessions', 'list'], y)).toBe(1)
    expect(y.stderr()).toContain('ERR_DAEMON_MISSING: no session daemon is running here')
    expect(y.stderr()).not.toMatch(/ENOENT/)
  })
})

describe('capture --encrypt', () => {
  it('warns that Wireshark cannot read past the BTH of encrypted packets', async () => {
    const x = io()
    const file = join(mkdtempSync(join(tmpdir(), 'capture-enc-')), 'c.pcap')
    expect(await main(['capture', file, '--encrypt'], x)).toBe(0)
    expect(x.stderr()).toMatch(/^warning: --encrypt: every packet carries a PSP-like header and ciphertext after its BTH/)
    expect(x.stderr()).toContain('Only the BTH (opcode, QPN, PSN) is true')
  })
})
