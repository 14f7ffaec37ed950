/**
 * Retrying what a server refused for now (ERR_BUSY): jittered exponential backoff, shared by a
 * first dial and a channel's reconnects.
 */
import { ErrorCode, isRdmaError } from '../errors.js'

/** The first pause of a backoff; each next one doubles, up to MAX_BACKOFF_MS. */
export const FIRST_BACKOFF_MS = 50
export const MAX_BACKOFF_MS = 1000

/** Waits about `delayMs` (jittered to 50–100 %, so refused clients do not return in step) and resolves with the next delay. */
export async function backoff(delayMs: number): Promise<number> {
  await new Promise((r) => setTimeout(r, delayMs * (0.5 + Math.random() / 2)).unref())
  return Math.min(delayMs * 2, MAX_BACKOFF_MS)
}

/**
 * Runs `attempt` until it succeeds, fails with anything but ERR_BUSY, or `budgetMs` has passed
 * (then the last ERR_BUSY is thrown). A server's admission refuses unauthenticated connections for
 * now, not for good, when a flood fills its pending pool.
 */
export async function retryWhileBusy<T>(attempt: () => Promise<T>, budgetMs: number): Promise<T> {
  const end = Date.now() + budgetMs
  let delay = FIRST_BACKOFF_MS
  for (;;) {
    try {
      return await attempt()
    } catch (err) {
      if (!isRdmaError(err) || err.code !== ErrorCode.BUSY || Date.now() + delay > end) throw err
      delay = await backoff(delay)
    }
  }
}
