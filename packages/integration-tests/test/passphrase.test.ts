/**
 * Passphrases on the control plane, end to end on provider-mock: a session
 * authenticated with a passphrase (stretched with scrypt under the listener's
 * salt) directly and through the session daemon (which relays the passphrase
 * to the peer); a raw PSK shorter than 32 bytes is refused before dialing.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SessionDaemon, connectDaemon, type Context } from '@rdma-session/core'
import { expectCode, mockContexts, waitFor } from './helpers.js'

const passphrase = 'correct horse battery staple'
const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function three(): Promise<[Context, Context, Context]> {
  const { ctxs } = await mockContexts(3)
  cleanups.push(...ctxs.map((c) => () => c.close()))
  return ctxs as [Context, Context, Context]
}

describe('passphrase authentication', () => {
  it('a session with a passphrase directly and through the daemon; a wrong passphrase is ERR_AUTH; a short raw PSK is refused before dialing', async () => {
    const [a, b, c] = await three()
    const server = await a.listen({ port: 0, auth: { passphrase } })
    const direct = await b.connect(server.url, { auth: { passphrase }, qps: [{}] })
    expect(a.sessions.get(direct.id).qps).toHaveLength(1)
    await expectCode(b.connect(server.url, { auth: { passphrase: `${passphrase}!` } }), 'ERR_AUTH')
    await expectCode(b.connect(server.url, { auth: { psk: 'only twenty-one bytes' } }), 'ERR_INVALID_ARGUMENT')

    const dir = mkdtempSync(join(tmpdir(), 'rdma-pass-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const token = randomBytes(32).toString('hex')
    const daemon = await SessionDaemon.start({ socketPath: join(dir, 'd.sock'), token })
    cleanups.push(() => daemon.close())
    const client = await connectDaemon(c, { socketPath: daemon.socketPath, token })
    cleanups.push(() => client.close())
    const relayed = await client.connect(server.url, { auth: { passphrase }, qps: [{}, {}] })
    await waitFor(() => a.sessions.list().includes(relayed.id), 5000, 'the peer has the relayed session')
    expect(a.sessions.get(relayed.id).qps).toHaveLength(2)
    await relayed.close()
    await waitFor(() => !a.sessions.list().includes(relayed.id), 5000, 'the peer closed the relayed session')
  }, 30_000)
})
