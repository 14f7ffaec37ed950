/** The guard of a perftest run: the peer's exchange (TCP connection or rdma_cm control QP) going away during the test ends its waits. */
import type { PerftestExchange } from './exchange.js'
import type { RunGuard } from './loops.js'
import { PerftestExchangeError } from './wire.js'

export /** Stops the run's waits when the peer's exchange goes away during the test. */
function guardFor(channel: PerftestExchange): RunGuard & { dispose(): void } {
  let reason: Error | null = null
  let waiting: ((err: Error) => void) | null = null
  const onClose = (): void => {
    reason = new PerftestExchangeError('the peer closed the exchange connection during the test', 'ERR_PERFTEST_PEER_GONE')
    waiting?.(reason)
  }
  const stop = channel.onGone(onClose)
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
    dispose: stop,
  }
}
