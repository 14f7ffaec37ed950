/**
 * What a directory needs from a store: keys with values, leases that expire unless kept alive,
 * prefix listing and prefix watches. etcd v3 has exactly this; the embedded backends imitate it.
 * Backends store opaque strings; they know nothing of hosts, sessions or signatures.
 */

export interface BackendLease {
  readonly id: string
  /** Ends the lease now: every key put under it is deleted. */
  revoke(): Promise<void>
}

export interface WatchEvent {
  readonly type: 'put' | 'delete'
  readonly key: string
  /** The new value (put only). */
  readonly value?: string
}

export interface DirectoryBackend {
  /** A short name for messages ('memory', 'file', 'etcd'). */
  readonly kind: string
  /**
   * A lease of `ttlMs` that the backend keeps alive until revoked or closed. `onLost` is called once
   * if it ends another way (the store forgot it, expired it while unreachable, …).
   */
  grant(ttlMs: number, onLost: (err: Error) => void): Promise<BackendLease>
  put(key: string, value: string, lease?: BackendLease): Promise<void>
  /** Puts only when the key is absent; returns false (and puts nothing) when it exists. */
  create(key: string, value: string, lease?: BackendLease): Promise<boolean>
  get(key: string): Promise<string | undefined>
  /** Every live key under `prefix`, in key order. */
  list(prefix: string): Promise<Array<{ key: string; value: string }>>
  delete(key: string): Promise<void>
  /** Calls `onEvent` for each change under `prefix` from now on; `onError` when the watch breaks for good. */
  watch(prefix: string, onEvent: (ev: WatchEvent) => void, onError: (err: Error) => void): Promise<{ close(): Promise<void> }>
  close(): Promise<void>
}
