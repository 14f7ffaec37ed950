/** The directory on the in-process and file backends: register, look up, labels, watch, leases, trust, hostile entries. */
import { sign } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { generateIdentity, publicKeyId } from '@rdma-session/core'
import { Directory, DirectoryError, FileBackend, MemoryBackend, MemoryStore, endorseHost, isDirectoryError, openDirectory, parseDirUrl, type HostEvent } from '../src/index.js'
import { waitFor } from './etcd-server.js'

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function memDir(store: MemoryStore, options: Partial<ConstructorParameters<typeof Directory>[0]> = {}): Directory {
  const d = new Directory({ backend: new MemoryBackend(store), ...options })
  cleanups.push(() => d.close())
  return d
}

function host(name: string, extra: Record<string, unknown> = {}) {
  const id = generateIdentity()
  return { id, options: { name, identity: id.privateKey, urls: { ws: [`ws://127.0.0.1:7471`] }, roce: [{ address: '10.0.0.1', port: 4791, gid: '::ffff:10.0.0.1' }], capabilities: { providers: ['softroce'], encryption: ['aes-256-gcm'] }, labels: { zone: 'a' }, ...extra } }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    if (!isDirectoryError(err) && (err as { code?: string }).code === undefined) throw err
    return (err as { code: string }).code
  }
  throw new Error('expected a rejection')
}

describe('directory (in-process backend)', () => {
  it('a host registers; another process finds it by name, dir:// URL and label; close() removes the entry at once', async () => {
    const store = new MemoryStore()
    const a = memDir(store)
    const b = memDir(store)
    const h = host('gpu-node-17', { labels: { zone: 'a', role: 'gpu' } })
    const reg = await a.register(h.options)
    expect(reg.state).toBe('live')
    const e = await b.lookup('dir://gpu-node-17')
    expect(e).toMatchObject({ name: 'gpu-node-17', identity: publicKeyId(h.id.publicKey), urls: { ws: ['ws://127.0.0.1:7471'] }, roce: [{ address: '10.0.0.1', port: 4791 }], capabilities: { providers: ['softroce'] }, trusted: false, stale: false })
    await a.register(host('cpu-1', { labels: { zone: 'b' } }).options)
    expect((await b.list({ labels: { zone: 'a' } })).map((x) => x.name)).toEqual(['gpu-node-17'])
    expect((await b.list()).map((x) => x.name)).toEqual(['cpu-1', 'gpu-node-17'])
    await reg.close()
    expect(await codeOf(b.lookup('gpu-node-17'))).toBe('ERR_DIRECTORY_NOT_FOUND')
  })

  it("a dead process's entry expires with its lease; watchers see join, update and leave", async () => {
    const store = new MemoryStore()
    const watcher = memDir(store)
    const events: HostEvent[] = []
    await watcher.watch((ev) => events.push(ev))
    const dying = new Directory({ backend: new MemoryBackend(store) })
    const reg = await dying.register({ ...host('n1').options, ttlMs: 300 })
    await waitFor('join event', () => events.some((e) => e.type === 'join' && e.name === 'n1'))
    await reg.update({ labels: { zone: 'c' } })
    await waitFor('update event', () => events.some((e) => e.type === 'update' && e.name === 'n1'))
    const t0 = Date.now()
    await dying.abandon() // keepalives stop, as when the process is killed
    await waitFor('leave event', () => events.some((e) => e.type === 'leave' && e.name === 'n1'), 5000)
    expect(events.find((e) => e.type === 'leave')).toMatchObject({ last: { name: 'n1', labels: { zone: 'c' } } })
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(await codeOf(watcher.lookup('n1'))).toBe('ERR_DIRECTORY_NOT_FOUND')
  })

  it('a lost lease is re-granted and the entry and its sessions come back (event restored)', async () => {
    const store = new MemoryStore()
    const d = memDir(store)
    const reg = await d.register({ ...host('n2').options, ttlMs: 5000 })
    await reg.publishSession({ id: 'sess-1', remote: { address: '10.0.0.9', port: 4791 } }, { joiners: ['*'] })
    const lost: unknown[] = []
    reg.on('lost', (e) => lost.push(e))
    const restored = new Promise((r) => reg.once('restored', r))
    store.expire(store.leases[0]!, 'simulated etcd restart')
    expect(lost[0]).toMatchObject({ code: 'ERR_DIRECTORY_UNAVAILABLE' })
    await restored
    expect(reg.state).toBe('live')
    expect((await d.lookup('n2')).name).toBe('n2')
    expect((await d.findSessions({ id: 'sess-1' }))[0]).toMatchObject({ id: 'sess-1', host: 'n2' })
  })

  it('a name held by another live identity is a conflict; the same identity may re-register', async () => {
    const store = new MemoryStore()
    const h = host('dup')
    await memDir(store).register(h.options)
    expect(await codeOf(memDir(store).register(host('dup').options))).toBe('ERR_DIRECTORY_CONFLICT')
    const again = await memDir(store).register(h.options)
    expect(again.state).toBe('live')
  })

  it('trust: strict directories accept listed keys and endorsed hosts, refuse others with ERR_DIRECTORY_UNTRUSTED', async () => {
    const store = new MemoryStore()
    const authority = generateIdentity()
    const known = host('known')
    const endorsed = host('endorsed')
    const stranger = host('stranger')
    const w = memDir(store)
    await w.register(known.options)
    await w.register({ ...endorsed.options, endorsement: endorseHost(authority.privateKey, { name: 'endorsed', identity: endorsed.id.publicKey }) })
    await w.register({ ...stranger.options, endorsement: endorseHost(authority.privateKey, { name: 'someone-else', identity: stranger.id.publicKey }) })
    const strict = memDir(store, { trust: { keys: [known.id.publicKey], authorities: [authority.publicKey] } })
    expect((await strict.lookup('known')).trusted).toBe(true)
    expect((await strict.lookup('endorsed')).trusted).toBe(true)
    expect(await codeOf(strict.lookup('stranger'))).toBe('ERR_DIRECTORY_UNTRUSTED')
    expect((await strict.list()).map((e) => e.name)).toEqual(['endorsed', 'known'])
    // An expired endorsement is worth nothing.
    const late = host('late')
    await w.register({ ...late.options, endorsement: endorseHost(authority.privateKey, { name: 'late', identity: late.id.publicKey }, { ttlMs: 1 }, Date.now() - 1000) })
    expect(await codeOf(strict.lookup('late'))).toBe('ERR_DIRECTORY_UNTRUSTED')
  })

  it('hostile and malformed entries give a stable code, never a crash; list skips them and reports each', async () => {
    const store = new MemoryStore()
    const d = memDir(store)
    const real = host('real')
    await d.register(real.options)
    const good = store.get('rdma-session/hosts/real')!
    const parsed = JSON.parse(good) as { body: string; sig: string }
    // The real host's entry, re-signed with its own key under another name: each case breaks one thing.
    const body = { ...(JSON.parse(parsed.body) as Record<string, unknown>), name: 'evil' }
    const other = generateIdentity()
    const resign = (b: Record<string, unknown>, key = real.id.privateKey) => {
      const text = JSON.stringify(b)
      return JSON.stringify({ body: text, sig: sign(null, Buffer.from(text), key).toString('base64url') })
    }
    const cases: Array<[string, string, string]> = [
      ['not json', '{{{', 'ERR_DIRECTORY_MALFORMED'],
      ['json null', 'null', 'ERR_DIRECTORY_MALFORMED'],
      ['array', '[1,2]', 'ERR_DIRECTORY_MALFORMED'],
      ['huge', JSON.stringify({ body: 'x'.repeat(20000), sig: 'a' }), 'ERR_DIRECTORY_MALFORMED'],
      ['body not json', JSON.stringify({ body: '{', sig: parsed.sig }), 'ERR_DIRECTORY_MALFORMED'],
      ['short sig', JSON.stringify({ body: parsed.body, sig: 'abc' }), 'ERR_DIRECTORY_MALFORMED'],
      ['proto pollution', resign({ ...body, labels: JSON.parse('{"__proto__":{"x":"1"}}') }), 'ERR_DIRECTORY_MALFORMED'],
      ['name mismatch', resign({ ...body, name: 'elsewhere' }), 'ERR_DIRECTORY_MALFORMED'],
      ['bad url', resign({ ...body, urls: { ws: ['http://x'] } }), 'ERR_DIRECTORY_MALFORMED'],
      ['bad address', resign({ ...body, roce: [{ address: 'not-an-ip' }] }), 'ERR_DIRECTORY_MALFORMED'],
      ['bad identity', resign({ ...body, identity: 42 }), 'ERR_DIRECTORY_MALFORMED'],
      ['label type', resign({ ...body, labels: { a: 1 } }), 'ERR_DIRECTORY_MALFORMED'],
      ['small-order key, zero signature', JSON.stringify({ body: JSON.stringify({ ...body, identity: 'A'.repeat(43) }), sig: Buffer.alloc(64).toString('base64url') }), 'ERR_DIRECTORY_MALFORMED'],
      ['too many urls', resign({ ...body, urls: { ws: Array(9).fill('ws://a:1') } }), 'ERR_DIRECTORY_MALFORMED'],
      ['altered body', (() => { const v = JSON.parse(resign(body)) as { body: string; sig: string }; return JSON.stringify({ body: v.body.replace('7471', '6666'), sig: v.sig }) })(), 'ERR_DIRECTORY_SIGNATURE'],
      ['replayed under another name', good, 'ERR_DIRECTORY_MALFORMED'],
      ['signed by another key', resign(body, other.privateKey), 'ERR_DIRECTORY_SIGNATURE'],
    ]
    const seen: string[] = []
    d.on('invalid', (ev: { name: string; error: DirectoryError }) => seen.push(`${ev.name}:${ev.error.code}`))
    for (const [what, value, code] of cases) {
      const name = 'evil'
      store.put(`rdma-session/hosts/${name}`, value, null)
      const err = await d.lookup(name).catch((e: unknown) => e)
      expect(err, what).toBeInstanceOf(DirectoryError)
      expect((err as DirectoryError).code, what).toBe(code)
      store.delete(`rdma-session/hosts/${name}`)
    }
    store.put('rdma-session/hosts/evil', '{{{', null)
    expect((await d.list()).map((e) => e.name)).toEqual(['real'])
    expect(seen).toContain('evil:ERR_DIRECTORY_MALFORMED')
    expect(await codeOf(d.lookup('../../etc/passwd'))).toBe('ERR_DIRECTORY_MALFORMED')
    expect(() => parseDirUrl('dir://a b')).toThrow(DirectoryError)
  })

  it('a watcher gets an invalid event for a hostile write and keeps going', async () => {
    const store = new MemoryStore()
    const d = memDir(store)
    const events: HostEvent[] = []
    await d.watch((ev) => events.push(ev))
    store.put('rdma-session/hosts/evil', '{"body":"{}","sig":""}', null)
    await d.register(host('fine').options)
    await waitFor('join of fine', () => events.some((e) => e.type === 'join' && e.name === 'fine'))
    expect(events.find((e) => e.type === 'invalid')).toMatchObject({ name: 'evil', error: { code: 'ERR_DIRECTORY_MALFORMED' } })
  })

  it('session entries: visible to the joiners they name, found by ID and remote, gone when unpublished; a forged one is refused', async () => {
    const store = new MemoryStore()
    const holder = memDir(store)
    const reader = generateIdentity()
    const reg = await holder.register(host('holder').options)
    await reg.publishSession({ id: 's-visible', remote: { address: '10.0.0.2', port: 4791 } }, { joiners: [reader.publicKey], peer: 'other' })
    await reg.publishSession({ id: 's-hidden', remote: { address: '10.0.0.3', port: 4791 } }, { joiners: [generateIdentity().publicKey] })
    const asReader = memDir(store, { reader: reader.publicKey })
    const anyone = memDir(store)
    expect((await asReader.findSessions()).map((s) => s.id)).toEqual(['s-visible'])
    expect(await asReader.querySession({ remote: '10.0.0.2:4791' })).toBe('s-visible')
    expect(await anyone.findSessions()).toEqual([])
    // A session entry signed by a key other than its host's is refused.
    const mallory = generateIdentity()
    const { sealEntry } = await import('../src/entry.js')
    store.put('rdma-session/sessions/s-forged/holder', sealEntry({ v: 1, kind: 'session', id: 's-forged', host: 'holder', remote: { address: '10.6.6.6', port: 1 }, joiners: ['*'], issuedAt: Date.now() }, mallory.privateKey), null)
    expect(await codeOf(asReader.findSessions({ id: 's-forged' }))).toBe('ERR_DIRECTORY_SIGNATURE')
    await reg.unpublishSession('s-visible')
    expect(await asReader.findSessions()).toEqual([])
  })
})

describe('directory (file backend: the processes of one host)', () => {
  it('two directories on one folder see each other; an abandoned registration expires; bad files are ignored', async () => {
    const path = mkdtempSync(join(tmpdir(), 'rdma-dir-file-'))
    cleanups.push(() => rmSync(path, { recursive: true, force: true }))
    const a = new Directory({ backend: new FileBackend({ path, pollMs: 20 }) })
    const b = await openDirectory({ url: `file://${path}` })
    cleanups.push(() => b.close())
    const events: HostEvent[] = []
    await b.watch((ev) => events.push(ev))
    await a.register({ ...host('local-1').options, ttlMs: 300 })
    expect((await b.lookup('local-1')).name).toBe('local-1')
    await waitFor('join', () => events.some((e) => e.type === 'join'))
    await a.abandon()
    await waitFor('leave after the lease', () => events.some((e) => e.type === 'leave'), 5000)
    expect(await codeOf(b.lookup('local-1'))).toBe('ERR_DIRECTORY_NOT_FOUND')
  })

  it('configuration errors have ERR_DIRECTORY_CONFIG', async () => {
    expect(await codeOf(openDirectory({ url: 'redis://x' }))).toBe('ERR_DIRECTORY_CONFIG')
    expect(await codeOf(openDirectory({ url: 'nonsense' }))).toBe('ERR_DIRECTORY_CONFIG')
    expect(await codeOf(openDirectory({ url: 'etcd://' }))).toBe('ERR_DIRECTORY_CONFIG')
  })
})
