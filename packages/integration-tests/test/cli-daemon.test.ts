/** The `rdma-session daemon` and `rdma-session sessions` commands (built CLI), with sessions whose QPs live in this process on provider-mock. */
import { afterAll, describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { connectDaemon, type Context } from '@rdma-session/core'
import { JsonProcess, stopAll } from './processes.js'
import { PSK, exposeBuffer, mockContexts, waitFor } from './helpers.js'

const BIN = fileURLToPath(new URL('../../cli/dist/bin.js', import.meta.url))
const run = promisify(execFile)
const dir = mkdtempSync(join(tmpdir(), 'rdma-cli-'))
const socketPath = join(dir, 'daemon.sock')
const tokenFile = join(dir, 'daemon.token')

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('node', [BIN, ...args, '--socket', socketPath, '--token-file', tokenFile])
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

afterAll(async () => {
  await stopAll()
  rmSync(dir, { recursive: true, force: true })
})

describe('rdma-session daemon / sessions', () => {
  it('the daemon makes a 0600 token and socket; sessions list/query show what local processes created; SIGTERM closes everything', async () => {
    expect(existsSync(BIN), `build the CLI first (pnpm --filter @rdma-session/cli build): ${BIN} is missing`).toBe(true)
    const daemon = new JsonProcess('node', [BIN, 'daemon', '--socket', socketPath, '--token-file', tokenFile], {}, 'daemon')
    await daemon.wait('listening')
    expect(statSync(socketPath).mode & 0o777).toBe(0o600)
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600)
    expect(JSON.parse((await cli('sessions', 'list', '--json')).stdout)).toEqual([])

    const { ctxs } = await mockContexts(2)
    const [peer, local] = ctxs as [Context, Context]
    exposeBuffer(peer)
    const server = await peer.listen({ port: 0, auth: { psk: PSK } })
    const client = await connectDaemon(local, { socketPath, token: readFileSync(tokenFile, 'utf8').trim() })
    const session = await client.connect(server.url, { auth: { psk: PSK }, qps: [{}, {}] })
    const remote = `${peer.endpoint.address}:${peer.endpoint.port}`

    const list = await cli('sessions', 'list')
    expect(list.code).toBe(0)
    expect(list.stdout).toContain(session.id)
    expect(list.stdout).toContain(remote)
    const query = await cli('sessions', 'query', '--remote', remote)
    expect(query).toMatchObject({ code: 0, stdout: `${session.id}\n` })
    expect((await cli('sessions', 'query', '--remote', '192.0.2.1:4791')).code).toBe(1)
    expect((await cli('sessions', 'bogus')).code).toBe(2)

    // The peer adds QPs to the session too: the daemon hands them to the process that created it.
    const fromPeer = await peer.sessions.get(session.id).addQps([{ qos: { class: 'bulk' } }])
    expect(fromPeer).toHaveLength(1)
    expect(session.qps).toHaveLength(3)
    expect(session.qps.map((q) => q.remoteQpn)).toContain(fromPeer[0]!.qpn)

    // A token file others can read is refused.
    chmodSync(tokenFile, 0o644)
    const refused = await cli('sessions', 'list')
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/readable by others/)
    chmodSync(tokenFile, 0o600)

    // Stopping the daemon closes the session on the peer (the daemon held its control connection).
    daemon.child.kill('SIGTERM')
    expect(await daemon.exited).toBe(0)
    await waitFor(() => peer.sessions.list().length === 0, 5000, 'the peer closed the session')
    await waitFor(() => session.closed, 5000, 'the local session closed')
    expect(existsSync(socketPath)).toBe(false)
    client.close()
    await local.close()
    await peer.close()
  }, 30_000)
})
