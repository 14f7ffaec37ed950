/** `rdma-session sessions list|query`: the sessions the daemon of this host knows. */
import { parseArgs } from 'node:util'
import { UsageError, type Command } from '../command.js'
import { connectToDaemon } from '../daemon-connection.js'

export const sessionsCommand: Command = {
  name: 'sessions',
  summary: 'list the sessions of this host, or query the ID of the session to a remote (via the daemon)',
  usage: `usage: rdma-session sessions [list] [--remote <addr:port>] [--json] [--socket <path>] [--token-file <path>]
       rdma-session sessions query --remote <addr:port>

  list    every session the daemon knows (ID, remote RoCE endpoint, QPs, processes, key epoch, peer URL)
  query   the ID of the oldest session to --remote (exit code 1 when there is none)
`,
  async run(args, io) {
    let parsed
    try {
      parsed = parseArgs({ args: [...args], allowPositionals: true, options: { remote: { type: 'string' }, json: { type: 'boolean' }, socket: { type: 'string' }, 'token-file': { type: 'string' } }, strict: true })
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    const { values, positionals } = parsed
    const sub = positionals[0] ?? 'list'
    if (sub !== 'list' && sub !== 'query') throw new UsageError(`unknown sessions command '${sub}'; use list or query`)
    if (sub === 'query' && values.remote === undefined) throw new UsageError('sessions query needs --remote <addr:port>')
    const client = await connectToDaemon(values, io.env)
    try {
      if (sub === 'query') {
        const id = await client.query(values.remote!)
        if (id === undefined) {
          io.err(`no session to ${values.remote}\n`)
          return 1
        }
        io.out(`${id}\n`)
        return 0
      }
      const sessions = await client.list(values.remote === undefined ? {} : { remote: values.remote })
      if (values.json === true) {
        io.out(`${JSON.stringify(sessions)}\n`)
        return 0
      }
      io.out('SESSION                           REMOTE                 QPS  PROCESSES  EPOCH  URL\n')
      for (const s of sessions) {
        io.out(`${s.id}  ${`${s.remote.address}:${s.remote.port}`.padEnd(21)}  ${String(s.qps).padStart(3)}  ${String(s.clients).padStart(9)}  ${String(s.epoch).padStart(5)}  ${s.url}\n`)
      }
      return 0
    } finally {
      client.close()
    }
  },
}
