/** Where the session daemon listens and keeps its token, and reading/making the token (mode 0600). */
import { chmodSync, closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { MIN_PSK_BYTES } from '@rdma-session/core'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** $RDMA_SESSION_SOCKET, else $XDG_RUNTIME_DIR/rdma-session.sock, else <tmp>/rdma-session-<uid>.sock. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RDMA_SESSION_SOCKET) return env.RDMA_SESSION_SOCKET
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'rdma-session.sock')
  return join(tmpdir(), `rdma-session-${process.getuid?.() ?? 'user'}.sock`)
}

export function daemonPaths(values: { socket?: string | undefined; 'token-file'?: string | undefined }, env: NodeJS.ProcessEnv = process.env): { socketPath: string; tokenFile: string } {
  const socketPath = values.socket ?? defaultSocketPath(env)
  return { socketPath, tokenFile: values['token-file'] ?? env.RDMA_SESSION_TOKEN_FILE ?? `${socketPath}.token` }
}

/** Reads the daemon token; refuses a file others can read. */
export function readToken(tokenFile: string): string {
  const st = statSync(tokenFile)
  if ((st.mode & 0o077) !== 0) throw new Error(`${tokenFile} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`)
  const token = readFileSync(tokenFile, 'utf8').trim()
  if (Buffer.byteLength(token) < MIN_PSK_BYTES) throw new Error(`${tokenFile} holds no usable token (at least ${MIN_PSK_BYTES} bytes; delete it and restart the daemon to make a new one)`)
  return token
}

/** The daemon token: read from the file, or made (32 random bytes, hex) and written with mode 0600. */
export function loadOrCreateToken(tokenFile: string): string {
  if (existsSync(tokenFile)) return readToken(tokenFile)
  const token = randomBytes(32).toString('hex')
  const fd = openSync(tokenFile, 'wx', 0o600)
  try {
    writeSync(fd, `${token}\n`)
  } finally {
    closeSync(fd)
  }
  chmodSync(tokenFile, 0o600)
  return token
}
