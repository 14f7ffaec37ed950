/** Connects a command to the session daemon of this host, or says how to start one. */
import { connectDaemon, type DaemonClient } from '@rdma-session/core'
import { daemonMissing } from './command-errors.js'
import { daemonPaths, readToken } from './daemon-paths.js'

export async function connectToDaemon(values: { socket?: string | undefined; 'token-file'?: string | undefined }, env: NodeJS.ProcessEnv): Promise<DaemonClient> {
  const { socketPath, tokenFile } = daemonPaths(values, env)
  try {
    return await connectDaemon(null, { socketPath, token: readToken(tokenFile) })
  } catch (err) {
    throw daemonMissing(err, socketPath, tokenFile)
  }
}
