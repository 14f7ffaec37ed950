/** The guard of a perftest run: the peer's TCP connection closing during the test ends its waits. */
import type { PerftestChannel } from './channel.js'
import type { RunGuard } from './loops.js'
import { PerftestExchangeError } from './wire.js'

export /** Stops the run's waits when the peer's TCP connection closes during the test. */
function guardFor(channel: PerftestChannel): RunGuard & { dispose(): void } {
  let reason: Error | null = null
  let waiting: ((err: Error) => void) | null = null
  const onClose = (): void => {
    reason = new PerftestExchangeError('the peer closed the TCP connection during the test', 'ERR_PERFTEST_PEER_GONE')
    waiting?.(reason)
  }
  channel.socket.once('close', onClose)
  return {
    check: () => {
      if (reason !== null) throw reason
    },
    wait: <T>(p: Promise<T>): Promise<T> => {
      if (reason !== null) return Promise.reject(reason)
      return new Promise<T>((resolve, reject) => {
        waiting = reject
        p.then(
          (v) => ((waiting = null), resolve(v)),
          (e: unknown) => ((waiting = null), reject(e)),
        )
      })
    },
    dispose: () => channel.socket.off('close', onClose),
  }
}
