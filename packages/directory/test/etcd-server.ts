/**
 * Real etcd servers for the tests: each on 127.0.0.1 with free ports and a temp data folder,
 * started and stopped by the test itself. Needs the `etcd` binary (Debian: apt-get install etcd-server).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ETCD = process.env.RDMA_SESSION_ETCD_BIN || 'etcd'

/** Why etcd tests cannot run here ('' when they can). */
export function etcdMissing(): string {
  const r = spawnSync(ETCD, ['--version'], { encoding: 'utf8' })
  if (r.error !== undefined || r.status !== 0) return `no etcd binary (${ETCD}) on PATH: apt-get install etcd-server`
  return ''
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

/** Polls `cond` until it holds or `timeoutMs` passes (then throws naming `what`). */
export async function waitFor<T>(what: string, cond: () => T | Promise<T>, timeoutMs = 10_000, stepMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await cond()
      if (v) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`)
    await new Promise((r) => setTimeout(r, stepMs))
  }
}

interface Member {
  readonly name: string
  readonly clientPort: number
  readonly peerPort: number
  readonly dataDir: string
  proc: ChildProcess | null
  log: string
}

/** One etcd member, or a cluster of several, on loopback. */
export class EtcdCluster {
  readonly members: Member[]
  readonly #root: string

  private constructor(root: string, members: Member[], host: string) {
    this.#root = root
    this.members = members
    this.host = host
  }

  /** Client address: 127.0.0.1 unless given (e.g. a bridge address network namespaces reach). */
  readonly host: string

  static async start(size = 1, host = '127.0.0.1'): Promise<EtcdCluster> {
    const root = mkdtempSync(join(tmpdir(), 'rdma-dir-etcd-'))
    const members: Member[] = []
    for (let i = 0; i < size; i++) members.push({ name: `m${i}`, clientPort: await freePort(), peerPort: await freePort(), dataDir: join(root, `m${i}`), proc: null, log: '' })
    const c = new EtcdCluster(root, members, host)
    for (let i = 0; i < size; i++) c.startMember(i)
    await Promise.all(members.map((_, i) => c.waitHealthy(i)))
    return c
  }

  /** Client URLs of every member. */
  get endpoints(): string[] {
    return this.members.map((m) => `http://${this.host}:${m.clientPort}`)
  }
  get endpoint(): string {
    return this.endpoints[0]!
  }

  startMember(i: number): void {
    const m = this.members[i]!
    const cluster = this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(',')
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', `http://${this.host}:${m.clientPort}`,
      '--advertise-client-urls', `http://${this.host}:${m.clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-cluster', cluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `t-${this.#root.slice(-6)}`,
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--log-level', 'warn',
    ]
    m.log = ''
    const proc = spawn(ETCD, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    proc.stdout!.on('data', (d: Buffer) => (m.log = (m.log + d.toString()).slice(-8000)))
    proc.stderr!.on('data', (d: Buffer) => (m.log = (m.log + d.toString()).slice(-8000)))
    m.proc = proc
  }

  async waitHealthy(i: number, timeoutMs = 15_000): Promise<void> {
    const m = this.members[i]!
    await waitFor(`etcd member ${m.name} healthy (log: ${m.log.slice(-500)})`, async () => {
      const r = await fetch(`http://${this.host}:${m.clientPort}/health`, { signal: AbortSignal.timeout(1000) })
      return r.ok && ((await r.json()) as { health?: string }).health === 'true'
    }, timeoutMs, 50)
  }

  /** SIGKILLs a member and waits for it to exit. */
  async kill(i: number): Promise<void> {
    const p = this.members[i]!.proc
    if (p === null || p.exitCode !== null) return
    const exited = new Promise((r) => p.once('exit', r))
    p.kill('SIGKILL')
    await exited
    this.members[i]!.proc = null
  }

  /** Starts a killed member again on its data (as after a crash or restart). */
  async restart(i: number): Promise<void> {
    this.startMember(i)
    await this.waitHealthy(i)
  }

  /** Kills and wipes a member's data, then starts it as a new single-member store (etcd lost everything). Single-member clusters only. */
  async wipeAndRestart(): Promise<void> {
    await this.kill(0)
    rmSync(this.members[0]!.dataDir, { recursive: true, force: true })
    await this.restart(0)
  }

  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i)
    rmSync(this.#root, { recursive: true, force: true })
  }
}
