/**
 * The daemon's default paths cannot be squatted (issue 22, probe 4). Another user (uid 65534)
 * makes the default directory <tmp>/rdma-session-0/ with a fake token and a listening socket
 * first: root's daemon, `rdma-session sessions` and connectDaemon refuse them with
 * ERR_UNSAFE_PATH naming the owner, and the squatter's socket never sees a connection. Without
 * a squatter the daemon makes the directory itself, mode 0700. Needs root (it runs the squatter
 * as another uid); skipped otherwise.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { connectDaemon } from '@rdma-session/core'
import { FIXTURES, JsonProcess, stopAll } from './processes.js'

const BIN = fileURLToPath(new URL('../../cli/dist/bin.js', import.meta.url))
const NOBODY = 65534
const root = process.geteuid?.() === 0
if (!root) console.warn('daemon-paths test skipped: it needs root to run the squatter as uid 65534')

const base = mkdtempSync(join(tmpdir(), 'rdma-squat-'))
// Like /tmp: everyone may create entries, the sticky bit keeps them apart.
chmodSync(base, 0o1777)
const children: ChildProcess[] = []

afterAll(async () => {
  for (const c of children) c.kill('SIGTERM')
  await stopAll()
  rmSync(base, { recursive: true, force: true })
})

/** The environment of root's commands: no $XDG_RUNTIME_DIR, so the default is under TMPDIR=<tmp>. */
function envIn(tmp: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp }
  delete env.XDG_RUNTIME_DIR
  delete env.RDMA_SESSION_SOCKET
  delete env.RDMA_SESSION_TOKEN_FILE
  return env
}

function cli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [BIN, ...args], { env, timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr }))
  })
}

interface Squatter {
  readonly events: { event: string; bytes?: number }[]
}

async function squat(dir: string, socketPath: string, tokenFile: string, dirMode: string): Promise<Squatter> {
  const child = spawn(process.execPath, [join(FIXTURES, 'squatter.mjs'), dir, socketPath, tokenFile, dirMode], { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  const events: Squatter['events'] = []
  const stderr: string[] = []
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l))
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the squatter did not listen within 10 s; stderr ${stderr.join('\n')}`)), 10_000)
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const e = JSON.parse(l) as Squatter['events'][number]
      events.push(e)
      if (e.event === 'listening') {
        clearTimeout(t)
        resolve()
      }
    })
    child.once('exit', (code) => reject(new Error(`the squatter exited (${code}): ${stderr.join('\n')}`)))
  })
  return { events }
}

describe.skipIf(!root)('daemon paths another user made first', () => {
  it('uid 65534 squats the default directory, token and socket: root\'s daemon and clients refuse, saying why, and send nothing', async () => {
    expect(existsSync(BIN), `build the CLI first: ${BIN} is missing`).toBe(true)
    const tmp = join(base, 'squatted')
    mkdirSync(tmp, { mode: 0o1777 })
    chmodSync(tmp, 0o1777)
    const env = envIn(tmp)
    const dir = join(tmp, 'rdma-session-0')
    const socketPath = join(dir, 'daemon.sock')
    const tokenFile = `${socketPath}.token`
    const squatter = await squat(dir, socketPath, tokenFile, '755')
    expect(statSync(dir).uid).toBe(NOBODY)

    const daemon = await cli(env, 'daemon')
    console.log(`[daemon-paths] daemon: exit ${daemon.code}; ${daemon.stderr.trim()}`)
    expect(daemon.code).not.toBe(0)
    expect(daemon.stderr).toMatch(/ERR_UNSAFE_PATH: the directory .*rdma-session-0 is owned by uid 65534, not by this user \(uid 0\)/)

    const sessions = await cli(env, 'sessions', 'list')
    console.log(`[daemon-paths] sessions: exit ${sessions.code}; ${sessions.stderr.trim()}`)
    expect(sessions.code).not.toBe(0)
    expect(sessions.stderr).toMatch(/ERR_UNSAFE_PATH: .*owned by uid 65534/)

    // A client given the squatter's paths explicitly: the socket check comes before any byte is sent.
    const err = await connectDaemon(null, { socketPath, token: 'ab'.repeat(32) }).then(() => null, (e: unknown) => e as { code?: string; details?: Record<string, unknown> })
    expect(err?.code).toBe('ERR_UNSAFE_PATH')
    expect(err?.details).toMatchObject({ reason: 'owner', owner: NOBODY })

    await new Promise((r) => setTimeout(r, 100))
    expect(squatter.events.filter((e) => e.event !== 'listening'), 'what reached the squatter').toEqual([])
  })

  it('a default directory of root\'s that others may write is refused too', async () => {
    const tmp = join(base, 'open-dir')
    mkdirSync(tmp, { mode: 0o1777 })
    chmodSync(tmp, 0o1777)
    const dir = join(tmp, 'rdma-session-0')
    mkdirSync(dir)
    chmodSync(dir, 0o777)
    const r = await cli(envIn(tmp), 'daemon')
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/ERR_UNSAFE_PATH: the directory .*rdma-session-0 has mode 777: writable by others/)
    expect(existsSync(join(dir, 'daemon.sock.token')), 'no token was written there').toBe(false)
  })

  it('without a squatter the daemon makes the default directory (0700) and its clients use it', async () => {
    const tmp = join(base, 'clean')
    mkdirSync(tmp, { mode: 0o1777 })
    chmodSync(tmp, 0o1777)
    const env = envIn(tmp)
    const daemon = new JsonProcess('node', [BIN, 'daemon'], env as Record<string, string>, 'daemon')
    const listening = await daemon.wait('listening')
    const dir = join(tmp, 'rdma-session-0')
    expect(listening.socket).toBe(join(dir, 'daemon.sock'))
    const st = statSync(dir)
    expect({ uid: st.uid, mode: (st.mode & 0o777).toString(8) }).toEqual({ uid: 0, mode: '700' })
    const list = await cli(env, 'sessions', 'list', '--json')
    expect(list).toMatchObject({ code: 0, stdout: '[]\n' })
    daemon.child.kill('SIGTERM')
    await daemon.exited
  })
})
