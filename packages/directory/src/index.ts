/** @rdma-session/directory: a cluster directory for rdma-session (etcd v3, or embedded). */
export { Directory, Registration, parseDirUrl, type DirectoryOptions, type DirectoryTrust, type HostEntry, type SessionEntry, type HostEvent, type HostFilter, type RegisterOptions, type PublishOptions } from './directory.js'
export { openDirectory, openBackend, defaultDirectoryPath, type OpenDirectoryOptions } from './open.js'
export { DirectoryError, DirectoryErrorCode, isDirectoryError } from './errors.js'
export { endorseHost, checkEndorsement, MAX_ENTRY_BYTES, type HostInfo, type HostRecord, type SessionRecord, type RoceAddress } from './entry.js'
export type { DirectoryBackend, BackendLease, WatchEvent } from './backend.js'
export { MemoryBackend, MemoryStore, memoryStore } from './memory-backend.js'
export { FileBackend, type FileBackendOptions } from './file-backend.js'
export { EtcdBackend, type EtcdBackendOptions } from './etcd-backend.js'
