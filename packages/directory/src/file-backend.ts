/**
 * The embedded backend for the processes of one host: a folder (default
 * $XDG_RUNTIME_DIR/rdma-session/directory or the OS temp folder), one file per key and one per
 * lease, written atomically (write + rename). A lease file holds its expiry time; the holder
 * rewrites it every ttl/3. Readers ignore and remove keys whose lease has expired, so a dead
 * process's entries disappear by themselves. Watches poll (default every 100 ms).
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BackendLease, DirectoryBackend, WatchEvent } from './backend.js'
import { DirectoryError } from './errors.js'

interface KeyFile {
  readonly key: string
  readonly value: string
  readonly lease: string | null
}

export interface FileBackendOptions {
  readonly path: string
  /** How often watches look for changes. Default 100 ms. */
  readonly pollMs?: number
}

export class FileBackend implements DirectoryBackend {
  readonly kind = 'file'
  readonly path: string
  readonly #pollMs: number
  readonly #timers = new Set<NodeJS.Timeout>()
  #closed = false

  constructor(options: FileBackendOptions) {
    this.path = options.path
    this.#pollMs = options.pollMs ?? 100
    mkdirSync(join(this.path, 'keys'), { recursive: true, mode: 0o700 })
    mkdirSync(join(this.path, 'leases'), { recursive: true, mode: 0o700 })
  }

  async grant(ttlMs: number, onLost: (err: Error) => void): Promise<BackendLease> {
    this.#check()
    const id = randomBytes(8).toString('hex')
    const file = join(this.path, 'leases', id)
    await this.#write(file, String(Date.now() + ttlMs))
    let lost = false
    const timer = setInterval(() => {
      void (async () => {
        const alive = await this.#leaseAlive(id)
        if (!alive) {
          clearInterval(timer)
          this.#timers.delete(timer)
          if (!lost) onLost(new DirectoryError('ERR_DIRECTORY_UNAVAILABLE', `directory lease ${id} expired`))
          lost = true
          return
        }
        await this.#write(file, String(Date.now() + ttlMs))
      })().catch(() => {})
    }, Math.max(10, ttlMs / 3))
    timer.unref()
    this.#timers.add(timer)
    return {
      id,
      revoke: async () => {
        lost = true
        clearInterval(timer)
        this.#timers.delete(timer)
        await rm(file, { force: true })
        for (const f of await this.#files()) if (f.lease === id) await rm(join(this.path, 'keys', f.name), { force: true })
      },
    }
  }

  async put(key: string, value: string, lease?: BackendLease): Promise<void> {
    this.#check()
    await this.#write(this.#keyFile(key), JSON.stringify({ key, value, lease: lease?.id ?? null } satisfies KeyFile))
  }

  async create(key: string, value: string, lease?: BackendLease): Promise<boolean> {
    // Not atomic across processes (a narrow race between two registrations of one name); etcd's is.
    if ((await this.get(key)) !== undefined) return false
    await this.put(key, value, lease)
    return true
  }

  async get(key: string): Promise<string | undefined> {
    this.#check()
    const f = await this.#read(this.#keyFile(key))
    return f === null ? undefined : f.value
  }

  async list(prefix: string): Promise<Array<{ key: string; value: string }>> {
    this.#check()
    return (await this.#files()).filter((f) => f.key.startsWith(prefix)).map(({ key, value }) => ({ key, value })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  async delete(key: string): Promise<void> {
    this.#check()
    await rm(this.#keyFile(key), { force: true })
  }

  async watch(prefix: string, onEvent: (ev: WatchEvent) => void, onError: (err: Error) => void): Promise<{ close(): Promise<void> }> {
    this.#check()
    let last = new Map((await this.list(prefix)).map((e) => [e.key, e.value]))
    let busy = false
    const timer = setInterval(() => {
      if (busy || this.#closed) return
      busy = true
      this.list(prefix)
        .then((now) => {
          const next = new Map(now.map((e) => [e.key, e.value]))
          for (const [key, value] of next) if (last.get(key) !== value) onEvent({ type: 'put', key, value })
          for (const key of last.keys()) if (!next.has(key)) onEvent({ type: 'delete', key })
          last = next
        })
        .catch((err: Error) => onError(err))
        .finally(() => (busy = false))
    }, this.#pollMs)
    timer.unref()
    this.#timers.add(timer)
    return {
      close: async () => {
        clearInterval(timer)
        this.#timers.delete(timer)
      },
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const t of this.#timers) clearInterval(t)
    this.#timers.clear()
  }

  #keyFile(key: string): string {
    return join(this.path, 'keys', Buffer.from(key).toString('base64url'))
  }

  async #files(): Promise<Array<KeyFile & { name: string }>> {
    const out: Array<KeyFile & { name: string }> = []
    for (const name of await readdir(join(this.path, 'keys'))) {
      if (name.includes('.tmp')) continue
      const f = await this.#read(join(this.path, 'keys', name))
      if (f !== null) out.push({ ...f, name })
    }
    return out
  }

  /** A key's record, or null when absent, unreadable or its lease has expired (then the file is removed). */
  async #read(file: string): Promise<KeyFile | null> {
    let f: KeyFile
    try {
      f = JSON.parse(await readFile(file, 'utf8')) as KeyFile
    } catch {
      return null
    }
    if (typeof f !== 'object' || f === null || typeof f.key !== 'string' || typeof f.value !== 'string') return null
    if (f.lease !== null && !(await this.#leaseAlive(f.lease))) {
      await rm(file, { force: true })
      return null
    }
    return f
  }

  async #leaseAlive(id: string): Promise<boolean> {
    if (!/^[0-9a-f]{16}$/.test(String(id))) return false
    try {
      const until = Number(await readFile(join(this.path, 'leases', id), 'utf8'))
      if (Number.isFinite(until) && until > Date.now()) return true
      await rm(join(this.path, 'leases', id), { force: true })
      return false
    } catch {
      return false
    }
  }

  async #write(file: string, text: string): Promise<void> {
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`
    await writeFile(tmp, text, { mode: 0o600 })
    await rename(tmp, file)
  }

  #check(): void {
    if (this.#closed) throw new DirectoryError('ERR_DIRECTORY_CLOSED', 'the directory backend is closed')
  }
}
