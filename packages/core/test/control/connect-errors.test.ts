/** Dialling the control plane: nothing listening is ERR_CONNECTION_REFUSED, a connection that is cut is ERR_CLOSED. */
import { afterEach, describe, expect, it } from 'vitest'
import { createServer, type Server } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ControlChannel, isRdmaError, type ControlConnection, type RdmaError } from '../../src/index.js'
import { normalizeClientAuth } from '../../src/control/auth.js'
import { dialControl } from '../../src/control/control-server.js'

const auth = normalizeClientAuth({ psk: Buffer.alloc(32, 42) })
const cleanups: (() => unknown)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c()
})

async function dialError(url: string): Promise<RdmaError> {
  const err = await dialControl(url, auth, 'peer', { handshakeTimeoutMs: 20_000 }, (conn: ControlConnection) => conn as unknown as ControlChannel<unknown, unknown>).then(
    () => { throw new Error('dial succeeded') },
    (e: unknown) => e,
  )
  expect(isRdmaError(err), String(err)).toBe(true)
  return err as RdmaError
}

/** A TCP port with nothing listening: listen on port 0, note the port, close. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as { port: number }
  await new Promise((r) => server.close(r))
  return port
}

describe('dial errors', () => {
  it('a TCP port nobody listens on: ERR_CONNECTION_REFUSED naming the URL', async () => {
    const url = `ws://127.0.0.1:${await freePort()}`
    const err = await dialError(url)
    expect(err.code).toBe('ERR_CONNECTION_REFUSED')
    expect(err.details).toMatchObject({ target: `${url}/`, errno: 'ECONNREFUSED' })
    expect(err.message).toContain(`nothing listens at ${url}`)
  })

  it('a Unix socket path with no socket: ERR_CONNECTION_REFUSED', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rdma-dial-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const err = await dialError(`ws+unix:${join(dir, 'none.sock')}`)
    expect(err.code).toBe('ERR_CONNECTION_REFUSED')
    expect(err.details.errno).toBe('ENOENT')
  })

  it('a server that accepts and then cuts the connection: ERR_CLOSED, not refused', async () => {
    const server: Server = createServer((socket) => socket.destroy())
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    cleanups.push(() => server.close())
    const err = await dialError(`ws://127.0.0.1:${(server.address() as { port: number }).port}`)
    expect(err.code).toBe('ERR_CLOSED')
  })
})
