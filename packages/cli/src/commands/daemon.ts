/** `rdma-session daemon`: runs the session daemon on a Unix socket until SIGINT/SIGTERM; events are JSON lines on stdout. */
import { parseArgs } from 'node:util'
import { SessionDaemon } from '@rdma-session/core'
import { UsageError, type Command } from '../command.js'
import { daemonPaths, loadOrCreateToken, prepareDaemonDir } from '../daemon-paths.js'

export const daemonCommand: Command = {
  name: 'daemon',
  summary: 'run the session daemon: one session table for the local processes of this host (Unix socket, mode 0600, token)',
  usage: `usage: rdma-session daemon [--socket <path>] [--token-file <path>]

  --socket <path>      Unix socket (default $RDMA_SESSION_SOCKET, $XDG_RUNTIME_DIR/rdma-session.sock, or
                       <tmp>/rdma-session-<uid>/daemon.sock in a directory made with mode 0700)
  --token-file <path>  the clients' token (default <socket>.token; made with mode 0600 when missing)

The socket, the token file and their directory must be yours and writable by nobody else:
the daemon and its clients refuse them otherwise (ERR_UNSAFE_PATH, saying why).

Prints JSON lines: listening, client, client-gone, session-closed, stopped. SIGINT/SIGTERM stop it.
`,
  async run(args, io) {
    let values
    try {
      ;({ values } = parseArgs({ args: [...args], options: { socket: { type: 'string' }, 'token-file': { type: 'string' } }, strict: true }))
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    const { socketPath, tokenFile } = daemonPaths(values, io.env)
    prepareDaemonDir(socketPath, io.env)
    const token = loadOrCreateToken(tokenFile)
    const daemon = await SessionDaemon.start({ socketPath, token })
    const log = (event: string, data: object = {}): void => io.out(`${JSON.stringify({ event, ...data })}\n`)
    daemon.on('client', (c: object) => log('client', c))
    daemon.on('client-gone', (c: object) => log('client-gone', c))
    daemon.on('session-closed', (s: object) => log('session-closed', s))
    log('listening', { socket: socketPath, tokenFile, pid: process.pid })
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve)
      process.once('SIGTERM', resolve)
    })
    await daemon.close()
    log('stopped')
    return 0
  },
}
