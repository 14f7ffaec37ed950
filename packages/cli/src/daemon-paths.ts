/**
 * Where the session daemon listens and keeps its token, and reading/making the token (mode 0600).
 * The default lives in a directory only this user can write: $XDG_RUNTIME_DIR, else
 * <tmp>/rdma-session-<uid>/ (made with mode 0700). The socket, the token and their directory must
 * be this user's and writable by nobody else (ERR_UNSAFE_PATH otherwise), so another local user
 * cannot stand in for the daemon.
 */
import { closeSync, constants, openSync, readFileSync, writeSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { MIN_PSK_BYTES } from '@rdma-session/core'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { checkPrivateDirectory, checkPrivateEntry, ensurePrivateDirectory } from '@rdma-session/core'

/** <tmp>/rdma-session-<uid>: the private directory of the default paths when $XDG_RUNTIME_DIR is unset. */
export function defaultDaemonDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_RUNTIME_DIR) return env.XDG_RUNTIME_DIR
  return join(tmpdir(), `rdma-session-${process.geteuid?.() ?? 'user'}`)
}

/** $RDMA_SESSION_SOCKET, else $XDG_RUNTIME_DIR/rdma-session.sock, else <tmp>/rdma-session-<uid>/daemon.sock. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RDMA_SESSION_SOCKET) return env.RDMA_SESSION_SOCKET
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'rdma-session.sock')
  return join(defaultDaemonDir(env), 'daemon.sock')
}

export function daemonPaths(values: { socket?: string | undefined; 'token-file'?: string | undefined }, env: NodeJS.ProcessEnv = process.env): { socketPath: string; tokenFile: string } {
  const socketPath = values.socket ?? defaultSocketPath(env)
  return { socketPath, tokenFile: values['token-file'] ?? env.RDMA_SESSION_TOKEN_FILE ?? `${socketPath}.token` }
}

/** The daemon's side: makes the default private directory when it is missing (the daemon then checks it). */
export function prepareDaemonDir(socketPath: string, env: NodeJS.ProcessEnv = process.env): void {
  if (!env.XDG_RUNTIME_DIR && dirname(socketPath) === defaultDaemonDir(env)) ensurePrivateDirectory(dirname(socketPath))
}

/** Reads the daemon token; refuses a file (or directory) that is not this user's alone. */
export function readToken(tokenFile: string): string {
  checkPrivateDirectory(dirname(tokenFile))
  checkPrivateEntry(tokenFile, 'token file')
  const token = readFileSync(tokenFile, 'utf8').trim()
  if (Buffer.byteLength(token) < MIN_PSK_BYTES) throw new Error(`${tokenFile} holds no usable token (at least ${MIN_PSK_BYTES} bytes; delete it and restart the daemon to make a new one)`)
  return token
}

/** The daemon token: read from the file, or made (32 random bytes, hex) and written with mode 0600. */
export function loadOrCreateToken(tokenFile: string): string {
  checkPrivateDirectory(dirname(tokenFile))
  const token = randomBytes(32).toString('hex')
  let fd: number
  try {
    fd = openSync(tokenFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readToken(tokenFile)
    throw err
  }
  try {
    writeSync(fd, `${token}\n`)
  } finally {
    closeSync(fd)
  }
  return token
}
