/**
 * The directory on a real etcd (started by this file on loopback, stopped after): registration,
 * lookup, watch, a SIGKILLed host's lease expiring, etcd down (stale cache, stable error codes) and
 * back, etcd losing its data (re-registration), hostile values written straight into etcd, and a
 * three-member cluster losing a member. Needs the etcd binary (Debian: etcd-server).
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateIdentity } from '@rdma-session/core'
import { environmentSkip } from '../../../tools/test-env.mjs'
import { Directory, isDirectoryError, openDirectory, type HostEvent } from '../src/index.js'
import { EtcdCluster, etcdMissing, waitFor } from './etcd-server.js'

const skip = environmentSkip('directory on etcd', etcdMissing())
const here = new URL('.', import.meta.url).pathname
const CHILD = join(here, '..', 'node_modules', '.cache', 'directory-test', 'host-child.mjs')

function host(name: string, ttlMs = 2000, labels: Record<string, string> = {}) {
  const id = generateIdentity()
  return { id, options: { name, identity: id.privateKey, urls: { ws: ['ws://127.0.0.1:7471'] }, roce: [{ address: '10.1.0.1' }], ttlMs, labels } }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    if (isDirectoryError(err)) return err.code
    throw err
  }
  throw new Error('expected a rejection')
}

describe.skipIf(skip)('directory on a real etcd (single member)', () => {
  let etcd: EtcdCluster
  const open: Directory[] = []
  const dir = async (extra: Record<string, unknown> = {}): Promise<Directory> => {
    const d = await openDirectory({ url: `etcd://${etcd.endpoint.slice('http://'.length)}`, etcd: { timeoutMs: 500 }, namespace: 'test', ...extra })
    open.push(d)
    return d
  }

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1)
    // The SIGKILL test's host process, bundled from TypeScript (externals resolve from this package).
    mkdirSync(join(CHILD, '..'), { recursive: true })
    const esbuild = join(here, '..', 'node_modules', '.bin', 'esbuild')
    const r = spawnSync(esbuild, [join(here, 'fixtures', 'host-child.ts'), '--bundle', '--platform=node', '--format=esm', '--target=node20', `--outfile=${CHILD}`, '--external:etcd3', '--external:@rdma-session/core', '--log-level=warning'], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`esbuild failed: ${r.stderr}`)
  })
  afterAll(async () => {
    for (const d of open) await d.close().catch(() => {})
    await etcd?.stop()
  })

  it('hosts register; others look them up by name and label and watch them; lookup latency', async () => {
    const a = await dir()
    const b = await dir()
    const events: HostEvent[] = []
    const w = await b.watch((ev) => events.push(ev))
    const h1 = host('etcd-h1', 2000, { rack: 'r1' })
    await a.register(h1.options)
    const reg2 = await a.register(host('etcd-h2', 2000, { rack: 'r2' }).options)
    expect((await b.lookup('etcd-h1')).roce).toEqual([{ address: '10.1.0.1' }])
    expect((await b.list({ labels: { rack: 'r2' } })).map((e) => e.name)).toEqual(['etcd-h2'])
    await waitFor('two joins', () => events.filter((e) => e.type === 'join').length === 2)
    await reg2.close()
    await waitFor('leave of etcd-h2', () => events.some((e) => e.type === 'leave' && e.name === 'etcd-h2'))
    expect(await codeOf(b.lookup('etcd-h2'))).toBe('ERR_DIRECTORY_NOT_FOUND')
    // Figure: verified lookups (get + JSON + Ed25519 verify).
    const n = 200
    const t0 = performance.now()
    for (let i = 0; i < n; i++) await b.lookup('etcd-h1')
    console.log(`[figure] etcd lookup by name: ${((performance.now() - t0) / n).toFixed(2)} ms mean over ${n}`)
    await w.close()
  })

  it("a SIGKILLed host's entry expires with its lease and watchers see it leave within the lease time", async () => {
    const b = await dir()
    const events: Array<HostEvent & { at: number }> = []
    await b.watch((ev) => events.push({ ...ev, at: Date.now() }))
    const ttlMs = 2000
    const child = spawn(process.execPath, [CHILD, 'etcd-victim', String(ttlMs)], { env: { ...process.env, RDMA_SESSION_DIRECTORY: `etcd://${etcd.endpoint.slice('http://'.length)}`, RDMA_SESSION_DIRECTORY_NAMESPACE: 'test' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    let killedAt = 0
    try {
      await waitFor(`child registered (output: ${out})`, () => out.includes('registered'), 15_000)
      await waitFor('join of etcd-victim', () => events.some((e) => e.type === 'join' && e.name === 'etcd-victim'))
    } finally {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGKILL')
      await exited
      killedAt = Date.now()
    }
    // etcd expires the lease ttl after the last keepalive (the client refreshes every ttl/3), checking every 500 ms.
    const leave = await waitFor('leave of etcd-victim', () => events.find((e) => e.type === 'leave' && e.name === 'etcd-victim'), ttlMs + 8000, 20)
    const observed = leave.at - killedAt
    console.log(`[figure] SIGKILLed host (lease ${ttlMs} ms) seen leaving by a watcher after ${observed} ms`)
    expect(observed).toBeLessThanOrEqual(ttlMs + 8000)
    expect(await codeOf(b.lookup('etcd-victim'))).toBe('ERR_DIRECTORY_NOT_FOUND')
  })

  it('etcd down: cached entries are served marked stale, others fail with ERR_DIRECTORY_UNAVAILABLE; etcd back: the host is still registered', async () => {
    const a = await dir()
    const b = await dir()
    const reg = await a.register(host('etcd-h3', 4000).options)
    await b.lookup('etcd-h3')
    await etcd.kill(0)
    const stale = await b.lookup('etcd-h3')
    expect(stale.stale).toBe(true)
    expect(await codeOf(b.lookup('etcd-never-seen'))).toBe('ERR_DIRECTORY_UNAVAILABLE')
    expect((await b.list()).every((e) => e.stale)).toBe(true)
    await etcd.restart(0)
    await waitFor('a fresh lookup after etcd restart', async () => (await b.lookup('etcd-h3')).stale === false, 15_000, 100)
    expect(['live', 'lost']).toContain(reg.state)
    await waitFor('registration live', () => reg.state === 'live', 15_000)
  })

  it('hostile values written straight into etcd: stable codes from lookup, invalid events from list and watch, no crash', async () => {
    const b = await dir()
    const raw = b.backend
    try {
      const invalid: string[] = []
      b.on('invalid', (ev: { name: string; error: { code: string } }) => invalid.push(`${ev.name}:${ev.error.code}`))
      const events: HostEvent[] = []
      await b.watch((ev) => events.push(ev), { initial: false })
      await raw.put('test/hosts/evil', '\u0000\u00ff not json')
      await raw.put('test/hosts/evil2', JSON.stringify({ body: JSON.stringify({ v: 1, kind: 'host', name: 'evil2', identity: 'A'.repeat(43), urls: { ws: [] }, issuedAt: 1 }), sig: Buffer.alloc(64).toString('base64url') }))
      await raw.put('test/hosts/big', 'x'.repeat(100_000))
      expect(await codeOf(b.lookup('evil'))).toBe('ERR_DIRECTORY_MALFORMED')
      // An all-zero identity key with an all-zero signature verifies in OpenSSL for some messages: refused as a small-order key.
      expect(await codeOf(b.lookup('evil2'))).toBe('ERR_DIRECTORY_MALFORMED')
      expect(await codeOf(b.lookup('big'))).toBe('ERR_DIRECTORY_MALFORMED')
      await b.list()
      expect(invalid).toEqual(expect.arrayContaining(['evil:ERR_DIRECTORY_MALFORMED', 'big:ERR_DIRECTORY_MALFORMED']))
      await waitFor('three invalid watch events', () => events.filter((e) => e.type === 'invalid').length === 3)
    } finally {
      for (const k of ['evil', 'evil2', 'big']) await raw.delete(`test/hosts/${k}`)
    }
  })
  it('etcd loses its data: the registration is lost, re-registers by itself, and the entry is back', async () => {
    const a = await dir()
    const b = await dir()
    const reg = await a.register(host('etcd-h4', 2000).options)
    const lost = new Promise((r) => reg.once('lost', r))
    const restored = new Promise((r) => reg.once('restored', r))
    await etcd.wipeAndRestart()
    await lost
    await restored
    await waitFor('entry back after re-registration', async () => (await b.lookup('etcd-h4')).stale === false, 15_000, 100)
  })
})

describe.skipIf(skip)('directory on a real etcd (three members)', () => {
  let etcd: EtcdCluster
  beforeAll(async () => {
    etcd = await EtcdCluster.start(3)
  })
  afterAll(async () => {
    await etcd?.stop()
  })

  it('a killed member changes nothing for the hosts: entries stay, lookups and watches go on, new hosts register', async () => {
    const url = `etcd://${etcd.endpoints.map((e) => e.slice('http://'.length)).join(',')}`
    const a = await openDirectory({ url, etcd: { timeoutMs: 1000 }, namespace: 'c3' })
    const b = await openDirectory({ url, etcd: { timeoutMs: 1000 }, namespace: 'c3' })
    try {
      const events: HostEvent[] = []
      await b.watch((ev) => events.push(ev))
      const reg = await a.register(host('c3-h1', 2000).options)
      await waitFor('join', () => events.some((e) => e.type === 'join' && e.name === 'c3-h1'))
      const lost: unknown[] = []
      reg.on('lost', (e) => lost.push(e))
      // Kill the member the clients most likely talk to first, then one more lease period passes.
      await etcd.kill(0)
      const until = Date.now() + 3000
      await waitFor('lookups keep working on the other members', async () => (await b.lookup('c3-h1')).stale === false, 15_000, 100)
      await a.register(host('c3-h2', 2000).options)
      await waitFor('watch sees a host registered after the member died', () => events.some((e) => e.type === 'join' && e.name === 'c3-h2'), 15_000)
      await waitFor('a full lease period after the kill', () => Date.now() > until, 10_000, 100)
      expect((await b.lookup('c3-h1')).stale).toBe(false)
      expect(lost).toEqual([])
      expect(reg.state).toBe('live')
      expect(events.some((e) => e.type === 'leave')).toBe(false)
    } finally {
      await a.close()
      await b.close()
    }
  })
})
