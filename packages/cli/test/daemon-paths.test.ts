/** The daemon's paths: defaults in a private directory; token files that are not this user's alone are refused (ERR_UNSAFE_PATH). */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { daemonPaths, defaultSocketPath, loadOrCreateToken, readToken } from '../src/daemon-paths.js'

const dir = mkdtempSync(join(tmpdir(), 'rdma-paths-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function codeOf(fn: () => unknown): { code?: string; message?: string; details?: Record<string, unknown> } {
  try {
    fn()
  } catch (err) {
    return err as { code?: string }
  }
  throw new Error('expected an error')
}

describe('daemon paths', () => {
  it('default to $XDG_RUNTIME_DIR, else <tmp>/rdma-session-<uid>/daemon.sock; the token sits beside the socket', () => {
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/7' })).toBe('/run/user/7/rdma-session.sock')
    expect(defaultSocketPath({})).toBe(join(tmpdir(), `rdma-session-${process.geteuid!()}`, 'daemon.sock'))
    expect(defaultSocketPath({ RDMA_SESSION_SOCKET: '/x/s.sock' })).toBe('/x/s.sock')
    expect(daemonPaths({}, { XDG_RUNTIME_DIR: '/run/user/7' }).tokenFile).toBe('/run/user/7/rdma-session.sock.token')
  })

  it('a token readable by others, a link, or another user\'s is refused with the reason; our own 0600 token is read', () => {
    const mine = join(dir, 'mine.token')
    const token = loadOrCreateToken(mine)
    expect(readToken(mine)).toBe(token)
    expect(loadOrCreateToken(mine), 'an existing token is read, not replaced').toBe(token)
    const open = join(dir, 'open.token')
    writeFileSync(open, 'ab'.repeat(32))
    chmodSync(open, 0o644)
    expect(codeOf(() => readToken(open))).toMatchObject({ code: 'ERR_UNSAFE_PATH', details: { reason: 'mode', mode: '644' } })
    const link = join(dir, 'link.token')
    symlinkSync(mine, link)
    expect(codeOf(() => readToken(link))).toMatchObject({ code: 'ERR_UNSAFE_PATH', details: { reason: 'type' } })
    if (process.geteuid!() === 0) {
      const theirs = join(dir, 'theirs.token')
      writeFileSync(theirs, 'ab'.repeat(32), { mode: 0o600 })
      chownSync(theirs, 65534, 65534)
      const err = codeOf(() => readToken(theirs))
      expect(err).toMatchObject({ code: 'ERR_UNSAFE_PATH', details: { reason: 'owner', owner: 65534 } })
      expect(err.message).toMatch(/owned by uid 65534, not by this user/)
    }
  })

  it('a token in a directory others may write is refused', () => {
    const shared = join(dir, 'shared')
    mkdirSync(shared)
    chmodSync(shared, 0o777)
    expect(codeOf(() => loadOrCreateToken(join(shared, 't.token')))).toMatchObject({ code: 'ERR_UNSAFE_PATH', details: { reason: 'mode', mode: '777' } })
  })
})
