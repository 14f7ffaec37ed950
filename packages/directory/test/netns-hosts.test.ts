/**
 * Four hosts in network namespaces, each a separate process on provider-softroce, registered in a
 * real etcd (started by the test, reached over the bridge). They find each other by name, open
 * sessions by name (handshakes pinned to endorsed keys), add QPs by a session ID found in the
 * directory, and a second process on one host joins a session by ID with a token. A SIGKILLed
 * host's entry expires with its lease and its peers close their sessions to it. etcd losing all its
 * data makes the hosts re-register; no session is lost.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateIdentity, publicKeyId } from '@rdma-session/core'
import { environmentSkip } from '../../../tools/test-env.mjs'
import { endorseHost } from '../src/index.js'
import { EtcdCluster, etcdMissing, waitFor } from './etcd-server.js'
import { createHosts, leftoverNamespaces, netnsUnavailable, type Hosts } from './netns.js'

const here = new URL('.', import.meta.url).pathname
const softroceDist = join(here, '..', 'node_modules', '@rdma-session', 'provider-softroce', 'dist', 'index.js')
const skip = environmentSkip('directory: four hosts in network namespaces', etcdMissing() || netnsUnavailable() || (existsSync(softroceDist) ? '' : 'provider-softroce is not built (pnpm build)'))
const CHILD = join(here, '..', 'node_modules', '.cache', 'directory-test', 'netns-host.mjs')

interface Ev {
  event: string
  host: string
  [k: string]: unknown
}

class HostProcess {
  readonly events: Ev[] = []
  readonly proc: ChildProcess
  #out = ''
  #seq = 0
  constructor(ns: string, env: Record<string, string>) {
    this.proc = spawn('ip', ['netns', 'exec', ns, process.execPath, CHILD], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let buf = ''
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString()
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        try {
          this.events.push(JSON.parse(line) as Ev)
        } catch {
          this.#out += `${line}\n`
        }
      }
    })
    this.proc.stderr!.on('data', (d: Buffer) => (this.#out = (this.#out + d.toString()).slice(-4000)))
  }
  async wait(event: string, pred: (e: Ev) => boolean = () => true, timeoutMs = 20_000): Promise<Ev> {
    return this.waitAny(event, (e) => e.event === event && pred(e), timeoutMs)
  }
  async waitAny(what: string, pred: (e: Ev) => boolean, timeoutMs = 20_000): Promise<Ev> {
    const event = what
    return waitFor(`${event} (stderr: ${this.#out.slice(-800)}; events: ${JSON.stringify(this.events.slice(-6)).slice(0, 1500)})`, () => this.events.find(pred), timeoutMs)
  }
  async call(op: string, args: Record<string, unknown> = {}): Promise<Ev> {
    const seq = ++this.#seq
    this.proc.stdin!.write(`${JSON.stringify({ op, seq, ...args })}\n`)
    const e = await this.waitAny(`${op} reply`, (x) => (x.event === `${op}-done` || x.event === `${op}-failed`) && x.seq === seq)
    return e
  }
  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return
    const exited = new Promise((r) => this.proc.once('exit', r))
    this.proc.kill('SIGKILL')
    await exited
  }
}

describe.skipIf(skip)('four hosts in network namespaces on softroce, found through etcd', () => {
  let hosts: Hosts
  let etcd: EtcdCluster
  const procs: HostProcess[] = []

  beforeAll(async () => {
    mkdirSync(join(CHILD, '..'), { recursive: true })
    const esbuild = join(here, '..', 'node_modules', '.bin', 'esbuild')
    const r = spawnSync(esbuild, [join(here, 'fixtures', 'netns-host.ts'), '--bundle', '--platform=node', '--format=esm', '--target=node20', `--outfile=${CHILD}`, '--external:etcd3', '--external:@rdma-session/core', '--external:@rdma-session/provider-softroce', '--log-level=warning'], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`esbuild failed: ${r.stderr}`)
    hosts = createHosts(4)
    etcd = await EtcdCluster.start(1, hosts.gateway)
  }, 60_000)
  afterAll(async () => {
    for (const p of procs) await p.kill()
    await etcd?.stop()
    hosts?.destroy()
    expect(leftoverNamespaces()).toEqual([])
  })

  it('register, find by name, sessions and QPs by session ID across hosts, join by ID, SIGKILLed host leaves and its peers clean up, etcd wiped and back', async () => {
    const authority = generateIdentity()
    const ids = hosts.names.map(() => generateIdentity())
    const trusted = ids.map((i) => publicKeyId(i.publicKey)).join(',')
    const names = ['h1', 'h2', 'h3', 'h4']
    const envFor = (i: number, extra: Record<string, string> = {}): Record<string, string> => ({
      RS_NAME: names[i]!,
      RS_ADDRESS: hosts.addresses[i]!,
      HOST_KEY: ids[i]!.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      ENDORSEMENT: endorseHost(authority.privateKey, { name: names[i]!, identity: ids[i]!.publicKey }),
      AUTHORITY: publicKeyId(authority.publicKey),
      TRUSTED: trusted,
      RDMA_SESSION_DIRECTORY: `etcd://${etcd.endpoint.slice('http://'.length)}`,
      RDMA_SESSION_DIRECTORY_NAMESPACE: 'netns',
      ...extra,
    })
    for (let i = 0; i < 4; i++) {
      const p = new HostProcess(hosts.names[i]!, envFor(i))
      procs.push(p)
      await p.wait('ready')
    }
    const [h1, h2, h3, h4] = procs as [HostProcess, HostProcess, HostProcess, HostProcess]
    // Everyone sees everyone (h1 started first: it saw the other three join).
    await waitFor('h1 saw three joins', () => new Set(h1.events.filter((e) => e.event === 'joined').map((e) => e.name)).size === 3)

    // Sessions by name: h1→h2, h3→h4, h4→h1.
    const s12 = await h1.call('connect', { peer: 'h2' })
    expect(s12.event, String(s12.message)).toBe('connect-done')
    expect(s12.remote).toMatchObject({ address: hosts.addresses[1] })
    const s34 = await h3.call('connect', { peer: 'h4' })
    expect(s34.event, String(s34.message)).toBe('connect-done')
    const s41 = await h4.call('connect', { peer: 'h1' })
    expect(s41.event, String(s41.message)).toBe('connect-done')

    // QPs added by a session ID found in the directory (by h2's RoCE endpoint).
    const add = await h1.call('addQps', { peer: 'h2', count: 3 })
    expect(add).toMatchObject({ event: 'addQps-done', sessionId: s12.sessionId, added: 3, total: 4 })
    await h2.wait('qp-added', (e) => e.sessionId === s12.sessionId && e.qps === 4)

    // Another host sees the session listed (published with joiners '*'); a second process on h1 joins it by ID with h1's token.
    const listed = (await h3.call('find', { sessionId: s12.sessionId })).sessions as Array<{ host: string }>
    expect(listed.map((r) => r.host).sort()).toEqual(['h1', 'h2'])
    const token = String((await h1.call('token', { sessionId: s12.sessionId })).token)
    const h1b = new HostProcess(hosts.names[0]!, envFor(0, { RS_PORT: '4792', RS_LISTEN: '0' }))
    procs.push(h1b)
    await h1b.wait('ready')
    const noToken = await h1b.call('join', { sessionId: s12.sessionId, token: 'rsj1.a.b.c' })
    expect(noToken).toMatchObject({ event: 'join-failed', code: 'ERR_JOIN_TOKEN' })
    const joined = await h1b.call('join', { sessionId: s12.sessionId, token })
    expect(joined, String(joined.message)).toMatchObject({ event: 'join-done', sessionId: s12.sessionId, added: 1 })

    // h4 is killed: its lease expires, the others see it leave, and h1 and h3 close their sessions with it.
    await h4.kill()
    const killedAt = Date.now()
    const leftAt = await Promise.all([h1, h2, h3].map(async (p) => {
      await p.wait('left', (e) => e.name === 'h4', 15_000)
      return Date.now() - killedAt
    }))
    console.log(`[figure] netns: SIGKILLed h4 (2 s lease) seen leaving by h1, h2, h3 after ≤ ${Math.max(...leftAt)} ms`)
    await h3.wait('session-closed', (e) => e.sessionId === s34.sessionId, 15_000)
    await h1.wait('session-closed', (e) => e.sessionId === s41.sessionId, 15_000)
    // The sessions that did not involve h4 are untouched.
    expect((await h1.call('sessions')).ids).toContain(s12.sessionId)

    // etcd loses everything (killed, data wiped, started again): every host re-registers with its
    // session entries, no session is lost, and QPs are still added by a session ID from the directory.
    await etcd.wipeAndRestart()
    for (const p of [h1, h2, h3]) await p.wait('restored', () => true, 30_000)
    expect((await h1.call('sessions')).ids).toContain(s12.sessionId)
    const again = await h1.call('addQps', { peer: 'h2', count: 1 })
    expect(again, String(again.message)).toMatchObject({ event: 'addQps-done', sessionId: s12.sessionId, added: 1 })
    await h2.wait('qp-added', (e) => e.sessionId === s12.sessionId && e.qps === 5 + 1)
  }, 120_000)
})
