/** What the daemon tests share: a softroce peer serving the control plane with a 'buf' region, and a session daemon process with its socket and token in a temp directory. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createContext, type Context, type PeerServer } from '@rdma-session/core'
import { softroce } from '@rdma-session/provider-softroce'
import { JsonProcess, stopAll } from './processes.js'

export interface DaemonHost {
  readonly psk: Buffer
  readonly dir: string
  readonly socketPath: string
  readonly tokenFile: string
  readonly peer: Context
  readonly server: PeerServer
  /** The peer's exposed 'buf' region. */
  readonly peerBuf: Buffer
  readonly daemon: JsonProcess
  /** Stops every process, closes the peer, removes the directory. */
  stop(): Promise<void>
}

export async function startDaemonHost(regionBytes: number): Promise<DaemonHost> {
  const psk = randomBytes(32)
  const dir = mkdtempSync(join(tmpdir(), 'rdma-daemon-'))
  const socketPath = join(dir, 'd.sock')
  const tokenFile = join(dir, 'token')
  writeFileSync(tokenFile, randomBytes(32).toString('hex'), { mode: 0o600 })
  const peer = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0, timers: { ackTimeoutMinMs: 5, ackTimeoutMaxMs: 100, rnrDelayMaxMs: 20 } }) })
  const peerBuf = Buffer.alloc(regionBytes)
  const mr = peer.registerMemory(peerBuf, { access: ['local-write', 'remote-read', 'remote-write'] })
  peer.sessions.expose('buf', mr.region(0, peerBuf.length))
  const server = await peer.listen({ port: 0, auth: { psk }, keepalive: { intervalMs: 200, timeoutMs: 1500 } })
  const daemon = new JsonProcess('node', ['daemon.mjs', socketPath, tokenFile], {}, 'daemon')
  await daemon.wait('listening')
  return {
    psk, dir, socketPath, tokenFile, peer, server, peerBuf, daemon,
    async stop() {
      await stopAll()
      await peer.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
