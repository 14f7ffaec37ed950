/**
 * The etcd v3 backend, through the `etcd3` client (gRPC, HTTP/2). Leases are etcd leases kept
 * alive by the client; a key put under one disappears when the process stops refreshing it.
 * etcd counts lease TTLs in whole seconds (at least 2 on a default single member); `ttlMs` is
 * rounded up. Every unary call has a deadline (`timeoutMs`) so an unreachable etcd gives
 * ERR_DIRECTORY_UNAVAILABLE instead of a hang.
 */
import type { Etcd3, Lease } from 'etcd3'
import type { BackendLease, DirectoryBackend, WatchEvent } from './backend.js'
import { DirectoryError } from './errors.js'

export interface EtcdBackendOptions {
  /** Client URLs of the etcd members, e.g. ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']. */
  readonly endpoints: readonly string[]
  /** Deadline of each call. Default 2000 ms. */
  readonly timeoutMs?: number
  /** etcd user (role-based access control), if etcd has auth enabled. */
  readonly auth?: { readonly username: string; readonly password: string }
  /** TLS: CA certificate (PEM) and, for client certificates, key and chain. */
  readonly tls?: { readonly ca: Buffer; readonly key?: Buffer; readonly cert?: Buffer }
}

function unavailable(err: unknown, what: string): DirectoryError {
  if (err instanceof DirectoryError) return err
  return new DirectoryError('ERR_DIRECTORY_UNAVAILABLE', `etcd ${what} failed: ${(err as Error)?.message ?? String(err)}`, { backend: 'etcd' })
}

export class EtcdBackend implements DirectoryBackend {
  readonly kind = 'etcd'
  readonly endpoints: readonly string[]
  readonly #client: Etcd3
  readonly #timeoutMs: number
  readonly #leases = new Set<Lease>()
  readonly #watchers = new Set<{ cancel(): Promise<void> }>()
  #closed = false

  private constructor(client: Etcd3, options: EtcdBackendOptions) {
    this.#client = client
    this.endpoints = options.endpoints
    this.#timeoutMs = options.timeoutMs ?? 2000
  }

  /** Loads `etcd3` (a dependency of this package, imported only when an etcd directory is used). */
  static async open(options: EtcdBackendOptions): Promise<EtcdBackend> {
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) throw new DirectoryError('ERR_DIRECTORY_CONFIG', 'the etcd backend needs at least one endpoint (http://host:2379)')
    for (const e of options.endpoints) {
      if (!/^https?:\/\/[^/\s]+\/?$/.test(e)) throw new DirectoryError('ERR_DIRECTORY_CONFIG', `etcd endpoint '${e}' is not http(s)://host:port`)
    }
    const { Etcd3 } = await import('etcd3')
    const timeoutMs = options.timeoutMs ?? 2000
    const client = new Etcd3({
      hosts: [...options.endpoints],
      dialTimeout: timeoutMs,
      // Streams (watch, lease keepalive) live long; unary calls get a deadline.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
      ...(options.auth === undefined ? {} : { auth: { username: options.auth.username, password: options.auth.password } }),
      ...(options.tls === undefined ? {} : { credentials: { rootCertificate: options.tls.ca, ...(options.tls.key === undefined ? {} : { privateKey: options.tls.key }), ...(options.tls.cert === undefined ? {} : { certChain: options.tls.cert }) } }),
    })
    return new EtcdBackend(client, options)
  }

  async grant(ttlMs: number, onLost: (err: Error) => void): Promise<BackendLease> {
    this.#check()
    const lease = this.#client.lease(Math.max(1, Math.ceil(ttlMs / 1000)), { autoKeepAlive: true })
    // 'lost' may also fire for a failed grant, which the grant() call below reports instead.
    let granted = false
    lease.on('lost', (err) => {
      this.#leases.delete(lease)
      if (granted) onLost(unavailable(err, 'lease keepalive'))
    })
    let id: string
    try {
      id = await this.#deadline(lease.grant(), 'lease grant')
    } catch (err) {
      lease.release()
      throw unavailable(err, 'lease grant')
    }
    granted = true
    this.#leases.add(lease)
    return {
      id,
      revoke: async () => {
        this.#leases.delete(lease)
        granted = false
        try {
          await this.#deadline(lease.revoke(), 'lease revoke')
        } catch {
          lease.release() // unreachable: the lease expires by itself
        }
      },
    }
  }

  async put(key: string, value: string, lease?: BackendLease): Promise<void> {
    this.#check()
    try {
      let put = this.#client.put(key).value(value)
      if (lease !== undefined) put = put.lease(lease.id)
      await this.#deadline(put.exec(), 'put')
    } catch (err) {
      throw unavailable(err, 'put')
    }
  }

  async create(key: string, value: string, lease?: BackendLease): Promise<boolean> {
    this.#check()
    try {
      let put = this.#client.put(key).value(value)
      if (lease !== undefined) put = put.lease(lease.id)
      const res = await this.#deadline(this.#client.if(key, 'Create', '==', 0).then(put).commit(), 'create')
      return res.succeeded
    } catch (err) {
      throw unavailable(err, 'create')
    }
  }

  async get(key: string): Promise<string | undefined> {
    this.#check()
    try {
      const v = await this.#deadline(this.#client.get(key).string(), 'get')
      return v ?? undefined
    } catch (err) {
      throw unavailable(err, 'get')
    }
  }

  async list(prefix: string): Promise<Array<{ key: string; value: string }>> {
    this.#check()
    try {
      const all = await this.#deadline(this.#client.getAll().prefix(prefix).sort('Key', 'Ascend').strings(), 'list')
      return Object.entries(all).map(([key, value]) => ({ key, value }))
    } catch (err) {
      throw unavailable(err, 'list')
    }
  }

  async delete(key: string): Promise<void> {
    this.#check()
    try {
      await this.#deadline(this.#client.delete().key(key).exec(), 'delete')
    } catch (err) {
      throw unavailable(err, 'delete')
    }
  }

  async watch(prefix: string, onEvent: (ev: WatchEvent) => void, onError: (err: Error) => void): Promise<{ close(): Promise<void> }> {
    this.#check()
    let watcher
    try {
      watcher = await this.#deadline(this.#client.watch().prefix(prefix).create(), 'watch')
    } catch (err) {
      throw unavailable(err, 'watch')
    }
    watcher.on('put', (kv) => onEvent({ type: 'put', key: kv.key.toString(), value: kv.value.toString() }))
    watcher.on('delete', (kv) => onEvent({ type: 'delete', key: kv.key.toString() }))
    // 'disconnected' is followed by an automatic reconnect that resumes at the last revision; 'error' is final.
    watcher.on('error', (err) => onError(unavailable(err, 'watch')))
    this.#watchers.add(watcher)
    return {
      close: async () => {
        this.#watchers.delete(watcher)
        await watcher.cancel().catch(() => {})
      },
    }
  }

  /** Stops keepalives (leases then expire by themselves) and watches, and closes the client. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const l of this.#leases) l.release()
    this.#leases.clear()
    await Promise.all([...this.#watchers].map((w) => w.cancel().catch(() => {})))
    this.#watchers.clear()
    this.#client.close()
  }

  /** Races a call with the deadline: the client's own retries must not outlast it by much. */
  #deadline<T>(p: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const limit = this.#timeoutMs * 2
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DirectoryError('ERR_DIRECTORY_UNAVAILABLE', `etcd ${what}: no answer in ${limit} ms from ${this.endpoints.join(', ')}`, { backend: 'etcd' })), limit)
        timer.unref()
      }),
    ]).finally(() => clearTimeout(timer))
  }

  #check(): void {
    if (this.#closed) throw new DirectoryError('ERR_DIRECTORY_CLOSED', 'the directory backend is closed')
  }
}
