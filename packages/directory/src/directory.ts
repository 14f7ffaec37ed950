/**
 * The directory: hosts register what peers need to reach them under a lease their process keeps
 * alive; processes look hosts up by name or label, watch them come and go, connect by name, and
 * find sessions by ID. Backends (etcd, file, memory) store signed opaque values; all checking is here.
 *
 * Keys: `<namespace>/hosts/<name>` and `<namespace>/sessions/<session id>/<host name>` (each end may list a session).
 */
import { EventEmitter } from 'node:events'
import { AuthError, isRdmaError, publicKeyId, type ClientAuth, type ConnectOptions, type Context, type DialOptions, type JoinOptions, type PrivateKeyInput, type PublicKeyInput, type Session, type WsPeerChannel } from '@rdma-session/core'
import type { BackendLease, DirectoryBackend, WatchEvent } from './backend.js'
import { checkEndorsement, checkHostInfo, checkName, checkSessionId, openHostEntry, openSessionEntry, sealEntry, type HostInfo, type HostRecord, type SessionRecord } from './entry.js'
import { DirectoryError, isDirectoryError } from './errors.js'

export interface DirectoryTrust {
  /** Host identity keys this process trusts. */
  readonly keys?: readonly PublicKeyInput[]
  /** Authority keys whose endorsements (endorseHost()) this process trusts. */
  readonly authorities?: readonly PublicKeyInput[]
}

export interface DirectoryOptions {
  readonly backend: DirectoryBackend
  /** Key prefix, so several clusters can share one etcd. Default 'rdma-session'. */
  readonly namespace?: string
  /**
   * Which host keys to accept. With trust given, lookups of hosts whose key is neither listed nor
   * endorsed fail with ERR_DIRECTORY_UNTRUSTED; without it, entries are returned with
   * `trusted: false` and connect() trusts only the keys in its `auth.trusted`.
   */
  readonly trust?: DirectoryTrust
  /** This process's identity (public key): the session entries naming it as a joiner are visible to it. */
  readonly reader?: PublicKeyInput
}

/** A host entry as read: verified, with where it came from. */
export interface HostEntry extends HostRecord {
  /** Its key is in the trust set or endorsed by a trusted authority. */
  readonly trusted: boolean
  /** Served from this process's cache because the backend was unreachable. */
  readonly stale: boolean
}

export interface SessionEntry extends SessionRecord {
  readonly stale: boolean
}

export type HostEvent =
  | { readonly type: 'join' | 'update'; readonly name: string; readonly entry: HostEntry }
  /** `last`: the host's last entry this process saw, to clean up after it (sessions to its RoCE addresses…). */
  | { readonly type: 'leave'; readonly name: string; readonly last?: HostEntry }
  /** An entry under the hosts prefix failed its checks (malformed, forged, untrusted); it is ignored. */
  | { readonly type: 'invalid'; readonly name: string; readonly error: DirectoryError }
  /** The watch broke for good (the backend gave up); open a new one. */
  | { readonly type: 'error'; readonly error: DirectoryError }

export interface HostFilter {
  /** Every label listed must match. */
  readonly labels?: Readonly<Record<string, string>>
}

export interface RegisterOptions extends Omit<HostInfo, 'identity' | 'capabilities' | 'labels' | 'roce'> {
  /** The host's Ed25519 private key: it signs the entry, and its public key is what clients pin. */
  readonly identity: PrivateKeyInput
  readonly roce?: HostInfo['roce']
  readonly capabilities?: Partial<HostInfo['capabilities']>
  readonly labels?: HostInfo['labels']
  /** Lease time: how long the entry outlives its process. Default 10000 ms (etcd rounds up to whole seconds). */
  readonly ttlMs?: number
  /** An authority's endorsement of this name and key (endorseHost()). */
  readonly endorsement?: string
}

export interface PublishOptions {
  /** Identity keys that may see the entry ('*' for all readers). Default: none but this host. A join token is still needed to join. */
  readonly joiners?: readonly (PublicKeyInput | '*')[]
  /** The directory name of the host at the other end. */
  readonly peer?: string
  /** This host's end of the session; default the first RoCE address (and port, else 4791) of the registration. */
  readonly local?: { address: string; port: number }
}

const RETRY_MIN_MS = 200
const RETRY_MAX_MS = 5000

function keyIds(keys: readonly PublicKeyInput[] | undefined): string[] {
  return (keys ?? []).map((k) => publicKeyId(k))
}

/** `dir://name` or a bare name → the name. */
export function parseDirUrl(target: string): string {
  if (typeof target !== 'string') throw new DirectoryError('ERR_DIRECTORY_CONFIG', 'a host name or dir:// URL is needed')
  const m = /^dir:\/\/([^/?#]+)\/?$/.exec(target)
  return checkName(m === null ? target : decodeURIComponent(m[1]!))
}

export class Directory extends EventEmitter {
  readonly backend: DirectoryBackend
  readonly namespace: string
  readonly #trustKeys: ReadonlySet<string>
  readonly #authorities: readonly string[]
  readonly #strict: boolean
  readonly #reader: string | null
  readonly #hosts = new Map<string, HostEntry>()
  readonly #sessions = new Map<string, SessionEntry>()
  readonly #registrations = new Set<Registration>()
  readonly #watches = new Set<{ close(): Promise<void> }>()
  #closed = false

  constructor(options: DirectoryOptions) {
    super()
    if (options?.backend === undefined) throw new DirectoryError('ERR_DIRECTORY_CONFIG', 'a directory needs a backend (openDirectory() picks one from the environment)')
    this.backend = options.backend
    this.namespace = (options.namespace ?? 'rdma-session').replace(/\/+$/, '')
    if (!/^[A-Za-z0-9._/-]{1,128}$/.test(this.namespace)) throw new DirectoryError('ERR_DIRECTORY_CONFIG', `namespace '${this.namespace}' must match [A-Za-z0-9._/-]{1,128}`)
    this.#trustKeys = new Set(keyIds(options.trust?.keys))
    this.#authorities = keyIds(options.trust?.authorities)
    this.#strict = options.trust !== undefined
    this.#reader = options.reader === undefined ? null : publicKeyId(options.reader)
  }

  get hostsPrefix(): string {
    return `${this.namespace}/hosts/`
  }
  get sessionsPrefix(): string {
    return `${this.namespace}/sessions/`
  }

  // ---- hosts

  /** Registers this host under a lease kept alive until close() (or the process dies). */
  async register(options: RegisterOptions): Promise<Registration> {
    this.#check()
    const reg = new Registration(this, options)
    await reg.start()
    this.#registrations.add(reg)
    reg.once('closed', () => this.#registrations.delete(reg))
    return reg
  }

  /** The live, verified entry of host `name` (or `dir://name`). Unreachable backend: the cached entry, marked stale. */
  async lookup(target: string): Promise<HostEntry> {
    this.#check()
    const name = parseDirUrl(target)
    let value: string | undefined
    try {
      value = await this.backend.get(this.hostsPrefix + name)
    } catch (err) {
      const cached = this.#hosts.get(name)
      if (cached !== undefined && isDirectoryError(err, 'ERR_DIRECTORY_UNAVAILABLE')) return { ...cached, stale: true }
      throw err
    }
    if (value === undefined) {
      this.#hosts.delete(name)
      throw new DirectoryError('ERR_DIRECTORY_NOT_FOUND', `no live host '${name}' in the directory (${this.backend.kind})`, { name })
    }
    return this.#acceptHost(value, name)
  }

  /** Live hosts matching the filter. Entries that fail their checks are skipped (event 'invalid'). */
  async list(filter: HostFilter = {}): Promise<HostEntry[]> {
    this.#check()
    let rows: Array<{ key: string; value: string }>
    try {
      rows = await this.backend.list(this.hostsPrefix)
    } catch (err) {
      if (!isDirectoryError(err, 'ERR_DIRECTORY_UNAVAILABLE')) throw err
      return [...this.#hosts.values()].filter((e) => matches(e, filter)).map((e) => ({ ...e, stale: true }))
    }
    const out: HostEntry[] = []
    for (const { key, value } of rows) {
      const name = key.slice(this.hostsPrefix.length)
      try {
        const e = this.#acceptHost(value, name)
        if (matches(e, filter)) out.push(e)
      } catch (err) {
        this.#invalid(name, err)
      }
    }
    return out
  }

  /** Calls `listener` for hosts that join, change and leave (first a 'join' for each live host, unless initial is false). */
  async watch(listener: (ev: HostEvent) => void, options: HostFilter & { initial?: boolean } = {}): Promise<{ close(): Promise<void> }> {
    this.#check()
    const known = new Set<string>()
    const deliver = (ev: HostEvent): void => {
      try {
        listener(ev)
      } catch (err) {
        this.emit('error', err)
      }
    }
    const onEvent = (ev: WatchEvent): void => {
      const name = ev.key.slice(this.hostsPrefix.length)
      if (ev.type === 'delete') {
        const last = this.#hosts.get(name)
        this.#hosts.delete(name)
        if (known.delete(name)) deliver(last === undefined ? { type: 'leave', name } : { type: 'leave', name, last })
        return
      }
      let entry: HostEntry
      try {
        entry = this.#acceptHost(ev.value, name)
      } catch (err) {
        const error = asDirectoryError(err)
        this.#invalid(name, error)
        deliver({ type: 'invalid', name, error })
        return
      }
      if (!matches(entry, options)) {
        if (known.delete(name)) deliver({ type: 'leave', name })
        return
      }
      deliver({ type: known.has(name) ? 'update' : 'join', name, entry })
      known.add(name)
    }
    const handle = await this.backend.watch(this.hostsPrefix, onEvent, (err) => deliver({ type: 'error', error: asDirectoryError(err) }))
    this.#watches.add(handle)
    if (options.initial !== false) {
      for (const e of await this.list(options)) {
        if (known.has(e.name)) continue
        known.add(e.name)
        deliver({ type: 'join', name: e.name, entry: e })
      }
    }
    return {
      close: async () => {
        this.#watches.delete(handle)
        await handle.close()
      },
    }
  }

  // ---- connecting by name

  /**
   * The host's control-plane URLs and the client auth to use with them. With identity auth the
   * handshake is pinned to the entry's key, which must be in `auth.trusted` or trusted by this
   * directory: a writable directory cannot send the client to an impostor. A PSK client trusts
   * whoever knows the PSK, as without a directory.
   */
  async resolve(target: string, auth: ClientAuth): Promise<{ entry: HostEntry; urls: readonly string[]; auth: ClientAuth }> {
    const name = parseDirUrl(target)
    let entry: HostEntry
    try {
      entry = await this.lookup(name)
    } catch (err) {
      if (isDirectoryError(err, 'ERR_DIRECTORY_SIGNATURE') || isDirectoryError(err, 'ERR_DIRECTORY_UNTRUSTED')) {
        throw new AuthError(`cannot authenticate host '${name}': ${(err as Error).message}`, { host: name, directoryCode: (err as DirectoryError).code })
      }
      throw err
    }
    if (entry.urls.ws.length === 0) throw new DirectoryError('ERR_DIRECTORY_NOT_FOUND', `host '${name}' lists no ws control-plane URL`, { name })
    let pinned: ClientAuth = auth
    if (auth !== null && typeof auth === 'object' && 'identity' in auth) {
      const trusted = new Set(keyIds(auth.trusted))
      if (!trusted.has(entry.identity) && !entry.trusted) {
        throw new AuthError(`the directory entry for '${name}' names key ${entry.identity}, which this client does not trust (not in auth.trusted, not endorsed by a trusted authority): refusing to connect`, { host: name, identity: entry.identity, directoryCode: 'ERR_DIRECTORY_UNTRUSTED' })
      }
      pinned = { identity: auth.identity, trusted: [entry.identity] }
    }
    return { entry, urls: entry.urls.ws, auth: pinned }
  }

  /** ctx.connect() to a host by name (`gpu-node-17` or `dir://gpu-node-17`), trying its URLs in order. */
  async connect(ctx: Context, target: string, options: ConnectOptions): Promise<Session> {
    const r = await this.resolve(target, options?.auth)
    return tryUrls(r.urls, (url) => ctx.connect(url, { ...options, auth: r.auth }))
  }

  /** ctx.dial() by name: a channel for several sessions. */
  async dial(ctx: Context, target: string, options: DialOptions): Promise<WsPeerChannel> {
    const r = await this.resolve(target, options?.auth)
    return tryUrls(r.urls, (url) => ctx.dial(url, { ...options, auth: r.auth }))
  }

  // ---- sessions

  /** Session entries visible to this process (naming its reader key, or '*'), by ID, an endpoint at either end (`remote`) or publishing host. */
  async findSessions(filter: { id?: string; remote?: { address: string; port: number } | string; host?: string } = {}): Promise<SessionEntry[]> {
    this.#check()
    const remote = filter.remote === undefined ? undefined : typeof filter.remote === 'string' ? filter.remote : `${filter.remote.address}:${filter.remote.port}`
    let rows: Array<{ key: string; value: string }>
    try {
      rows = await this.backend.list(this.sessionsPrefix + (filter.id === undefined ? '' : `${checkSessionId(filter.id)}/`))
    } catch (err) {
      if (!isDirectoryError(err, 'ERR_DIRECTORY_UNAVAILABLE')) throw err
      const cached = [...this.#sessions.values()].map((s) => ({ ...s, stale: true }))
      return cached.filter((s) => sessionMatches(s, filter.id, remote, filter.host))
    }
    const out: SessionEntry[] = []
    for (const { key, value } of rows) {
      const rest = key.slice(this.sessionsPrefix.length)
      const slash = rest.lastIndexOf('/')
      const id = rest.slice(0, slash)
      const host = rest.slice(slash + 1)
      try {
        if (slash <= 0) throw new DirectoryError('ERR_DIRECTORY_MALFORMED', `malformed directory entry: session key '${rest.slice(0, 200)}' is not <id>/<host>`)
        const rec = await openSessionEntry(value, id, async (h) => (await this.lookup(h)).identity)
        if (rec.host !== host) throw new DirectoryError('ERR_DIRECTORY_MALFORMED', `malformed directory entry: session '${id}' stored under host '${host}' names host '${rec.host}'`, { id, host })
        if (!this.#visible(rec)) continue
        const entry = { ...rec, stale: false }
        this.#sessions.set(rest, entry)
        if (sessionMatches(entry, filter.id, remote, filter.host)) out.push(entry)
      } catch (err) {
        this.#invalid(rest, err)
        if (filter.id !== undefined && rows.length === 1) throw err
      }
    }
    return out
  }

  /**
   * The ID of a listed session with `remote` at one of its ends (the cluster-wide sessions.query()):
   * a process next to one end asks with the other end's RoCE endpoint, as it would ask ctx.sessions.query().
   */
  async querySession(filter: { remote: { address: string; port: number } | string }): Promise<string | undefined> {
    return (await this.findSessions({ remote: filter.remote }))[0]?.id
  }

  /**
   * Joins a session listed in the directory by its ID: dials the host at the far end (an end that
   * listed it and sees this process's host as the session's remote) (pinned to
   * its key, as connect) and presents the join token. The ID only finds the session; the token is the credential.
   */
  async join(ctx: Context, sessionId: string, options: JoinOptions): Promise<Session> {
    const recs = await this.findSessions({ id: sessionId })
    if (recs.length === 0) throw new DirectoryError('ERR_DIRECTORY_NOT_FOUND', `no session '${sessionId}' visible in the directory`, { sessionId })
    // Each end may list the session; the joiner sits next to one end and dials the other (whose remote is the joiner's host).
    const rec = recs.find((r) => r.remote.address === ctx.endpoint.address) ?? recs[0]!
    const r = await this.resolve(rec.host, options?.auth)
    return tryUrls(r.urls, (url) => ctx.join(url, { ...options, auth: r.auth }))
  }

  /** Revokes this process's registrations (their entries go at once) and stops watches. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.all([...this.#registrations].map((r) => r.close().catch(() => {})))
    await Promise.all([...this.#watches].map((w) => w.close().catch(() => {})))
    await this.backend.close()
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Stops keepalives without revoking: the entries expire after their lease time, as if this process had died. */
  async abandon(): Promise<void> {
    this.#closed = true
    for (const r of this.#registrations) r.abandon()
    await this.backend.close()
  }

  // ---- internals

  #acceptHost(value: unknown, name: string): HostEntry {
    const rec = openHostEntry(value, name)
    const trusted = this.#trustKeys.has(rec.identity) || (rec.endorsement !== undefined && this.#authorities.length > 0 && checkEndorsement(rec.endorsement, rec.name, rec.identity, this.#authorities))
    if (this.#strict && !trusted) {
      throw new DirectoryError('ERR_DIRECTORY_UNTRUSTED', `host entry '${name}' is signed by key ${rec.identity}, which is neither trusted nor endorsed by a trusted authority`, { name, identity: rec.identity })
    }
    const entry: HostEntry = { ...rec, trusted, stale: false }
    this.#hosts.set(name, entry)
    return entry
  }

  #visible(rec: SessionRecord): boolean {
    return rec.joiners.includes('*') || (this.#reader !== null && rec.joiners.includes(this.#reader)) || this.#registrationIdentities().has(rec.host)
  }

  #registrationIdentities(): Set<string> {
    return new Set([...this.#registrations].map((r) => r.name))
  }

  #invalid(name: string, err: unknown): void {
    if (this.listenerCount('invalid') > 0) this.emit('invalid', { name, error: asDirectoryError(err) })
  }

  #check(): void {
    if (this.#closed) throw new DirectoryError('ERR_DIRECTORY_CLOSED', 'the directory is closed')
  }
}

function asDirectoryError(err: unknown): DirectoryError {
  if (err instanceof DirectoryError) return err
  return new DirectoryError('ERR_DIRECTORY_UNAVAILABLE', (err as Error)?.message ?? String(err))
}

function matches(e: HostRecord, filter: HostFilter): boolean {
  for (const [k, v] of Object.entries(filter.labels ?? {})) if (e.labels[k] !== v) return false
  return true
}

function sessionMatches(s: SessionRecord, id: string | undefined, remote: string | undefined, host: string | undefined): boolean {
  const ends = [`${s.remote.address}:${s.remote.port}`, ...(s.local === undefined ? [] : [`${s.local.address}:${s.local.port}`])]
  return (id === undefined || s.id === id) && (remote === undefined || ends.includes(remote)) && (host === undefined || s.host === host)
}

/** Tries each URL until one connects; an authentication failure stops at once (it is not a reachability problem). */
async function tryUrls<T>(urls: readonly string[], attempt: (url: string) => Promise<T>): Promise<T> {
  let last: unknown
  for (const url of urls) {
    try {
      return await attempt(url)
    } catch (err) {
      if (isRdmaError(err) && ['ERR_AUTH', 'ERR_JOIN_TOKEN', 'ERR_INVALID_ARGUMENT', 'ERR_SESSION_NOT_FOUND'].includes(err.code)) throw err
      last = err
    }
  }
  throw last
}

/**
 * A host's registration: its entry (and the session entries it publishes) under one lease. When
 * the lease is lost (etcd unreachable past the lease time, or restarted without its data) it emits
 * 'lost', retries with backoff and emits 'restored' once the entries are back.
 */
export class Registration extends EventEmitter {
  readonly name: string
  readonly #dir: Directory
  readonly #identity: PrivateKeyInput
  readonly #ttlMs: number
  #info: HostInfo
  #endorsement: string | undefined
  #lease: BackendLease | null = null
  #state: 'starting' | 'live' | 'lost' | 'closed' = 'starting'
  readonly #published = new Map<string, SessionRecord>()
  #retry: NodeJS.Timeout | null = null
  #retryMs = RETRY_MIN_MS

  constructor(dir: Directory, options: RegisterOptions) {
    super()
    this.#dir = dir
    if (options?.identity === undefined) throw new DirectoryError('ERR_DIRECTORY_CONFIG', 'register() needs the host identity (an Ed25519 private key)')
    this.#identity = options.identity
    this.#ttlMs = options.ttlMs ?? 10_000
    if (!Number.isFinite(this.#ttlMs) || this.#ttlMs < 100 || this.#ttlMs > 3_600_000) throw new DirectoryError('ERR_DIRECTORY_CONFIG', 'ttlMs must be between 100 ms and 1 hour')
    this.#info = checkHostInfo({ ...options, identity: publicKeyId(options.identity) })
    this.#endorsement = options.endorsement
    this.name = this.#info.name
  }

  get state(): 'starting' | 'live' | 'lost' | 'closed' {
    return this.#state
  }
  get identity(): string {
    return this.#info.identity
  }
  get info(): HostInfo {
    return this.#info
  }

  /** @internal Grants a lease and writes the entries. */
  async start(): Promise<void> {
    const lease = await this.#dir.backend.grant(this.#ttlMs, (err) => this.#onLost(err))
    try {
      const key = this.#dir.hostsPrefix + this.name
      const value = this.#seal()
      if (!(await this.#dir.backend.create(key, value, lease))) {
        const existing = await this.#dir.backend.get(key)
        let holder: string | null = null
        try {
          holder = existing === undefined ? null : openHostEntry(existing, this.name).identity
        } catch {
          holder = null // unreadable or forged: ours to replace
        }
        if (holder !== null && holder !== this.identity) {
          throw new DirectoryError('ERR_DIRECTORY_CONFLICT', `host name '${this.name}' is registered by another identity (${holder}) under a live lease`, { name: this.name, holder })
        }
        await this.#dir.backend.put(key, value, lease)
      }
      for (const rec of this.#published.values()) await this.#dir.backend.put(this.#sessionKey(rec.id), sealEntry(rec, this.#identity), lease)
    } catch (err) {
      await lease.revoke().catch(() => {})
      throw err
    }
    if (this.#state === 'closed') {
      await lease.revoke().catch(() => {})
      return
    }
    this.#lease = lease
    this.#state = 'live'
  }

  /** Changes what the entry says (URLs, labels, capabilities…) and rewrites it. */
  async update(changes: Partial<Omit<RegisterOptions, 'identity' | 'name' | 'ttlMs'>>): Promise<void> {
    this.#checkOpen()
    this.#info = checkHostInfo({ ...this.#info, ...changes, name: this.name, identity: this.identity })
    if (changes.endorsement !== undefined) this.#endorsement = changes.endorsement
    if (this.#lease !== null) await this.#dir.backend.put(this.#dir.hostsPrefix + this.name, this.#seal(), this.#lease)
  }

  /**
   * Lists a session under this host's lease so authorized processes find it by ID or remote.
   * With a Session object the entry goes when the session closes.
   */
  async publishSession(session: Session | { id: string; remote: { address: string; port: number } }, options: PublishOptions = {}): Promise<SessionRecord> {
    this.#checkOpen()
    const joiners = (options.joiners ?? []).map((k) => (k === '*' ? '*' : publicKeyId(k)))
    const first = this.#info.roce[0]
    const local = options.local ?? (first === undefined ? undefined : { address: first.address, port: first.port ?? 4791 })
    const rec: SessionRecord = {
      v: 1,
      kind: 'session',
      id: checkSessionId(session.id),
      host: this.name,
      remote: { address: session.remote.address, port: session.remote.port },
      ...(local === undefined ? {} : { local }),
      ...(options.peer === undefined ? {} : { peer: checkName(options.peer, 'peer name') }),
      joiners: [...new Set(joiners)],
      issuedAt: Date.now(),
    }
    this.#published.set(rec.id, rec)
    if (session instanceof EventEmitter) (session as Session).once('closed', () => void this.unpublishSession(rec.id).catch(() => {}))
    if (this.#lease !== null) await this.#dir.backend.put(this.#sessionKey(rec.id), sealEntry(rec, this.#identity), this.#lease)
    return rec
  }

  async unpublishSession(id: string): Promise<void> {
    if (!this.#published.delete(id)) return
    if (this.#state === 'live') await this.#dir.backend.delete(this.#sessionKey(id))
  }

  #sessionKey(id: string): string {
    return `${this.#dir.sessionsPrefix}${id}/${this.name}`
  }

  /** Revokes the lease: the entries disappear now. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    if (this.#retry !== null) clearTimeout(this.#retry)
    const lease = this.#lease
    this.#lease = null
    await lease?.revoke()
    this.emit('closed')
  }

  /** @internal Stops without revoking (the lease runs out by itself). */
  abandon(): void {
    this.#state = 'closed'
    if (this.#retry !== null) clearTimeout(this.#retry)
    this.#lease = null
    this.emit('closed')
  }

  #seal(): string {
    const rec: HostRecord = { v: 1, kind: 'host', ...this.#info, issuedAt: Date.now(), ...(this.#endorsement === undefined ? {} : { endorsement: this.#endorsement }) }
    return sealEntry(rec, this.#identity)
  }

  #onLost(err: Error): void {
    if (this.#state === 'closed') return
    this.#lease = null
    this.#state = 'lost'
    this.emit('lost', asDirectoryError(err))
    this.#scheduleRetry()
  }

  #scheduleRetry(): void {
    if (this.#state === 'closed' || this.#retry !== null) return
    this.#retry = setTimeout(() => {
      this.#retry = null
      if (this.#state === 'closed') return
      this.start().then(
        () => {
          this.#retryMs = RETRY_MIN_MS
          if (this.#state === 'closed') return
          this.emit('restored')
        },
        (e: unknown) => {
          if (this.#state === 'closed') return
          this.#state = 'lost'
          if (this.listenerCount('retry-failed') > 0) this.emit('retry-failed', asDirectoryError(e))
          this.#retryMs = Math.min(RETRY_MAX_MS, this.#retryMs * 2)
          this.#scheduleRetry()
        },
      )
    }, this.#retryMs)
    this.#retry.unref()
  }

  #checkOpen(): void {
    if (this.#state === 'closed') throw new DirectoryError('ERR_DIRECTORY_CLOSED', `registration '${this.name}' is closed`)
  }
}
