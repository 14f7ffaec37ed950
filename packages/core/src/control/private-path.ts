/**
 * Trust checks for the session daemon's files: its socket, its token file and the directory
 * holding them must belong to this user and be writable by nobody else, or another local user
 * could have put them there to receive what clients send (the daemon token, peer keys). Every
 * check runs before anything is sent or read, and fails with ERR_UNSAFE_PATH saying why.
 */
import { existsSync, lstatSync, mkdirSync, type Stats } from 'node:fs'
import { dirname } from 'node:path'
import { UnsafePathError } from '../errors.js'

/** This process's effective uid; null where there are no uids (Windows): nothing to check. */
function myUid(): number | null {
  return typeof process.geteuid === 'function' ? process.geteuid() : null
}

function statOf(path: string, what: string): Stats {
  try {
    return lstatSync(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new UnsafePathError(path, `the ${what} ${path} cannot be checked (${code ?? String(err)})`, { reason: 'missing', errno: code })
  }
}

function checkOwnerAndMode(path: string, st: Stats, what: string, forbidden: number, uid: number): void {
  if (st.uid !== uid) {
    throw new UnsafePathError(path, `the ${what} ${path} is owned by uid ${st.uid}, not by this user (uid ${uid}): another user may have made it to intercept the daemon's clients; remove it, or use a path in a directory only you can write ($XDG_RUNTIME_DIR)`, { reason: 'owner', owner: st.uid, uid })
  }
  if ((st.mode & forbidden) !== 0) {
    const mode = (st.mode & 0o777).toString(8)
    throw new UnsafePathError(path, `the ${what} ${path} has mode ${mode}: ${forbidden === 0o022 ? 'writable by others' : 'readable by others (or writable)'}; chmod ${forbidden === 0o022 ? 'go-w' : '600'} it, or remove it`, { reason: 'mode', mode })
  }
}

/** The directory of a daemon socket or token: a real directory (not a link), ours, writable by us only. */
export function checkPrivateDirectory(dir: string): void {
  const uid = myUid()
  if (uid === null) return
  const st = statOf(dir, 'directory')
  if (!st.isDirectory()) throw new UnsafePathError(dir, `${dir} is not a directory${st.isSymbolicLink() ? ' (a symbolic link)' : ''}; the daemon's files need a private directory`, { reason: 'type' })
  checkOwnerAndMode(dir, st, 'directory', 0o022, uid)
}

/**
 * Creates `dir` with mode 0700 when it is missing (never through a symbolic link: mkdir does
 * not follow one at the last component), then checks it as checkPrivateDirectory does.
 */
export function ensurePrivateDirectory(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  checkPrivateDirectory(dir)
}

/**
 * A daemon socket (`kind` 'socket': ours and writable by us only) or token file ('token file':
 * a regular file, ours, no access for others). Neither may be a symbolic link.
 */
export function checkPrivateEntry(path: string, kind: 'socket' | 'token file'): void {
  const uid = myUid()
  if (uid === null) return
  const st = statOf(path, kind)
  const typeOk = kind === 'socket' ? st.isSocket() : st.isFile()
  if (!typeOk) throw new UnsafePathError(path, `${path} is not a ${kind === 'socket' ? 'Unix socket' : 'regular file'}${st.isSymbolicLink() ? ' (a symbolic link)' : ''}`, { reason: 'type' })
  checkOwnerAndMode(path, st, kind, kind === 'socket' ? 0o022 : 0o077, uid)
}

/**
 * A daemon socket path: its directory is private, and the socket (when `mustExist`, or when
 * something is there already) is ours. The daemon checks before it listens, clients before they
 * connect.
 */
export function checkDaemonSocket(socketPath: string, mustExist: boolean): void {
  checkPrivateDirectory(dirname(socketPath))
  if (mustExist || existsSync(socketPath)) checkPrivateEntry(socketPath, 'socket')
}
