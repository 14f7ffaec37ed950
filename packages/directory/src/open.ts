/**
 * Choosing a backend by configuration, like the provider: `openDirectory({ url })` or
 * $RDMA_SESSION_DIRECTORY:
 *
 *   etcd://10.0.0.1:2379,10.0.0.2:2379   etcd v3 cluster (etcds:// for TLS)
 *   file:///run/rdma-session/directory   embedded, the processes of one host (the default)
 *   memory://name                        in-process (tests, simulations)
 *
 * $RDMA_SESSION_DIRECTORY_NAMESPACE sets the key prefix when the options do not.
 */
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DirectoryBackend } from './backend.js'
import { Directory, type DirectoryOptions } from './directory.js'
import { EtcdBackend, type EtcdBackendOptions } from './etcd-backend.js'
import { DirectoryError } from './errors.js'
import { FileBackend } from './file-backend.js'
import { MemoryBackend, memoryStore } from './memory-backend.js'

export interface OpenDirectoryOptions extends Omit<DirectoryOptions, 'backend'> {
  /** Backend URL; default $RDMA_SESSION_DIRECTORY, else the file backend in defaultDirectoryPath(). */
  readonly url?: string
  /** Or a backend instance. */
  readonly backend?: DirectoryBackend
  /** etcd options beyond the endpoints (timeouts, auth, TLS). */
  readonly etcd?: Omit<EtcdBackendOptions, 'endpoints'>
}

/** Where the embedded file backend lives by default: $XDG_RUNTIME_DIR/rdma-session/directory, else <tmp>/rdma-session-<uid>/directory. */
export function defaultDirectoryPath(): string {
  const runtime = process.env.XDG_RUNTIME_DIR
  if (runtime) return join(runtime, 'rdma-session', 'directory')
  return join(tmpdir(), `rdma-session-${process.getuid?.() ?? 'user'}`, 'directory')
}

/** A backend from a URL (see the file header). */
export async function openBackend(url: string, etcd: Omit<EtcdBackendOptions, 'endpoints'> = {}): Promise<DirectoryBackend> {
  const m = /^([a-z+]+):\/\/(.*)$/.exec(url)
  if (m === null) throw new DirectoryError('ERR_DIRECTORY_CONFIG', `directory URL '${url}' must be etcd://host:port[,host:port…], file:///path or memory://name`)
  const [, scheme, rest] = m as unknown as [string, string, string]
  switch (scheme) {
    case 'etcd':
    case 'etcds': {
      const proto = scheme === 'etcds' ? 'https' : 'http'
      const endpoints = rest.replace(/\/+$/, '').split(',').filter(Boolean).map((h) => `${proto}://${h}`)
      return EtcdBackend.open({ ...etcd, endpoints })
    }
    case 'file':
      return new FileBackend({ path: rest === '' ? defaultDirectoryPath() : rest })
    case 'memory':
      return new MemoryBackend(memoryStore(rest === '' ? 'default' : rest))
    default:
      throw new DirectoryError('ERR_DIRECTORY_CONFIG', `unknown directory backend '${scheme}'; use etcd, etcds, file or memory`)
  }
}

/** A Directory on the configured backend. */
export async function openDirectory(options: OpenDirectoryOptions = {}): Promise<Directory> {
  const backend = options.backend ?? (await openBackend(options.url ?? (process.env.RDMA_SESSION_DIRECTORY || 'file://'), options.etcd))
  const namespace = options.namespace ?? (process.env.RDMA_SESSION_DIRECTORY_NAMESPACE || undefined)
  return new Directory({ ...options, ...(namespace === undefined ? {} : { namespace }), backend })
}
