/**
 * The in-process backend: one MemoryStore shared by every Directory of a process that names it
 * (`memory://<store>`), with leases on timers. For tests and for many simulated hosts in one process.
 */
import { randomBytes } from 'node:crypto'
import type { BackendLease, DirectoryBackend, WatchEvent } from './backend.js'
import { DirectoryError } from './errors.js'

interface LeaseState {
  readonly id: string
  ttlMs: number
  timer: NodeJS.Timeout | null
  readonly keys: Set<string>
  readonly onLost: Set<(err: Error) => void>
}

/** A key-value store with leases and watches, living in this process. */
export class MemoryStore {
  readonly #data = new Map<string, { value: string; lease: string | null }>()
  readonly #leases = new Map<string, LeaseState>()
  readonly #watchers = new Set<{ prefix: string; fn: (ev: WatchEvent) => void }>()

  grant(ttlMs: number, onLost: (err: Error) => void): string {
    const id = randomBytes(8).toString('hex')
    const state: LeaseState = { id, ttlMs, timer: null, keys: new Set(), onLost: new Set([onLost]) }
    this.#leases.set(id, state)
    this.keepAlive(id)
    return id
  }

  /** Restarts a lease's clock; false when it no longer exists. */
  keepAlive(id: string): boolean {
    const s = this.#leases.get(id)
    if (s === undefined) return false
    if (s.timer !== null) clearTimeout(s.timer)
    s.timer = setTimeout(() => this.expire(id), s.ttlMs)
    s.timer.unref()
    return true
  }

  /** Ends a lease as if its holder had died (tests call this to simulate a crash). */
  expire(id: string, reason = 'lease expired'): void {
    const s = this.#leases.get(id)
    if (s === undefined) return
    this.#drop(s)
    for (const fn of s.onLost) fn(new DirectoryError('ERR_DIRECTORY_UNAVAILABLE', `directory lease ${id}: ${reason}`))
  }

  revoke(id: string): void {
    const s = this.#leases.get(id)
    if (s !== undefined) this.#drop(s)
  }

  /** IDs of the live leases. */
  get leases(): string[] {
    return [...this.#leases.keys()]
  }

  put(key: string, value: string, lease: string | null): void {
    if (lease !== null && !this.#leases.has(lease)) throw new DirectoryError('ERR_DIRECTORY_UNAVAILABLE', `lease ${lease} is gone`)
    const old = this.#data.get(key)
    if (old?.lease != null) this.#leases.get(old.lease)?.keys.delete(key)
    this.#data.set(key, { value, lease })
    if (lease !== null) this.#leases.get(lease)!.keys.add(key)
    this.#emit({ type: 'put', key, value })
  }

  get(key: string): string | undefined {
    return this.#data.get(key)?.value
  }

  list(prefix: string): Array<{ key: string; value: string }> {
    return [...this.#data].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, { value }]) => ({ key, value }))
  }

  delete(key: string): void {
    const old = this.#data.get(key)
    if (old === undefined) return
    if (old.lease !== null) this.#leases.get(old.lease)?.keys.delete(key)
    this.#data.delete(key)
    this.#emit({ type: 'delete', key })
  }

  watch(prefix: string, fn: (ev: WatchEvent) => void): () => void {
    const w = { prefix, fn }
    this.#watchers.add(w)
    return () => this.#watchers.delete(w)
  }

  #drop(s: LeaseState): void {
    if (s.timer !== null) clearTimeout(s.timer)
    this.#leases.delete(s.id)
    for (const key of s.keys) {
      this.#data.delete(key)
      this.#emit({ type: 'delete', key })
    }
    s.keys.clear()
  }

  #emit(ev: WatchEvent): void {
    for (const w of [...this.#watchers]) {
      if (!ev.key.startsWith(w.prefix)) continue
      queueMicrotask(() => w.fn(ev))
    }
  }
}

const stores = new Map<string, MemoryStore>()

/** The process-wide store of that name (created on first use). */
export function memoryStore(name = 'default'): MemoryStore {
  let s = stores.get(name)
  if (s === undefined) stores.set(name, (s = new MemoryStore()))
  return s
}

export class MemoryBackend implements DirectoryBackend {
  readonly kind = 'memory'
  readonly store: MemoryStore
  readonly #leases = new Map<string, NodeJS.Timeout>()
  readonly #watches = new Set<() => void>()
  #closed = false

  constructor(store: MemoryStore = memoryStore()) {
    this.store = store
  }

  async grant(ttlMs: number, onLost: (err: Error) => void): Promise<BackendLease> {
    this.#check()
    const id = this.store.grant(ttlMs, (err) => {
      const t = this.#leases.get(id)
      if (t !== undefined) clearInterval(t)
      this.#leases.delete(id)
      onLost(err)
    })
    const timer = setInterval(() => this.store.keepAlive(id), Math.max(10, ttlMs / 3))
    timer.unref()
    this.#leases.set(id, timer)
    return {
      id,
      revoke: async () => {
        clearInterval(timer)
        this.#leases.delete(id)
        this.store.revoke(id)
      },
    }
  }

  async put(key: string, value: string, lease?: BackendLease): Promise<void> {
    this.#check()
    this.store.put(key, value, lease?.id ?? null)
  }

  async create(key: string, value: string, lease?: BackendLease): Promise<boolean> {
    this.#check()
    if (this.store.get(key) !== undefined) return false
    this.store.put(key, value, lease?.id ?? null)
    return true
  }

  async get(key: string): Promise<string | undefined> {
    this.#check()
    return this.store.get(key)
  }

  async list(prefix: string): Promise<Array<{ key: string; value: string }>> {
    this.#check()
    return this.store.list(prefix)
  }

  async delete(key: string): Promise<void> {
    this.#check()
    this.store.delete(key)
  }

  async watch(prefix: string, onEvent: (ev: WatchEvent) => void): Promise<{ close(): Promise<void> }> {
    this.#check()
    const stop = this.store.watch(prefix, onEvent)
    this.#watches.add(stop)
    return {
      close: async () => {
        stop()
        this.#watches.delete(stop)
      },
    }
  }

  /** Closing stops keepalives (leases then expire by themselves, as when a process dies) and watches. */
  async close(): Promise<void> {
    this.#closed = true
    for (const t of this.#leases.values()) clearInterval(t)
    this.#leases.clear()
    for (const stop of this.#watches) stop()
    this.#watches.clear()
  }

  #check(): void {
    if (this.#closed) throw new DirectoryError('ERR_DIRECTORY_CLOSED', 'the directory backend is closed')
  }
}
