/** The guest scripts' result lines: each part prints `GUEST-RESULT <json>` (its result or its error), bounded in time. */
export const emit = (part: string, r: Record<string, unknown>): void => console.log(`GUEST-RESULT ${JSON.stringify({ part, ...r })}`)
export const errText = (err: unknown): string => `${(err as Error).message} ${JSON.stringify((err as { code?: string }).code ?? '')}`

/** A part that does not finish in this time is reported as failed (a hang fails in minutes, not at the guest's timeout). */
export const PART_MS = 180_000

export async function part(name: string, f: () => Promise<Record<string, unknown>>): Promise<void> {
  const t0 = performance.now()
  let timer: NodeJS.Timeout | undefined
  const overdue = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${name} did not finish in ${PART_MS / 1000} s`)), PART_MS)))
  try {
    emit(name, { ...(await Promise.race([f(), overdue])), ms: Math.round(performance.now() - t0) })
  } catch (err) {
    emit(name, { error: errText(err), stack: (err as Error).stack?.split('\n').slice(0, 6).join(' | '), ms: Math.round(performance.now() - t0) })
  } finally {
    clearTimeout(timer)
  }
}
