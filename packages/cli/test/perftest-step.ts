/**
 * One step of the perftest guest tests (perftest-rxe, perftest-rdma-cm): `rdma-session perftest`
 * on the host against perftest in the guest. The host's client retried while the guest's server
 * is not up, the guest's output of the step, the result rows of both sides and the checks every
 * step makes on them.
 */
import { expect } from 'vitest'
import type { Guest, RunResult } from '../../../tools/rxe-vm/index.mjs'
import { kindRow, resultRow, tagged, type SoftroceCounters } from './perftest-guest.js'

/** What the helpers need of a step: its number, the test, and the guest's role. */
export interface PerftestStep {
  readonly k: number
  readonly verb: string
  readonly kind: 'bw' | 'lat'
  readonly guest: 'server' | 'client'
  /** -D: seconds instead of iterations (latency tests print perftest's duration table then). */
  readonly duration?: number
}

/** The result rows of a step: who printed it (`rdma-session perftest` or the perftest tool) and the row. */
export type StepRows = [string, ReturnType<typeof resultRow>][]

const HOST = 'rdma-session perftest'

/** The host's client, run again every 250 ms while the guest's server refuses it (exit 1, `refused` in stderr), until 180 s after `t0`. */
export async function hostClientRun(run: () => Promise<RunResult>, refused: RegExp, t0: number): Promise<RunResult> {
  for (;;) {
    const r = await run()
    if (!(r.code === 1 && refused.test(r.stderr)) || Date.now() - t0 > 180_000) return r
    await new Promise((res) => setTimeout(res, 250))
  }
}

/** The guest's output of step `k` once its exit line is there (waits up to 120 s): the tagged lines, stdout and stderr joined. */
export async function guestStepOutput(guest: Guest, k: number): Promise<{ lines: string[]; out: string; err: string }> {
  let lines: string[] = []
  for (let i = 0; i < 1200 && !lines.some((l) => l.startsWith('exit=')); i++) {
    await new Promise((res) => setTimeout(res, 100))
    lines = tagged(guest.output(), String(k))
  }
  return { lines, out: lines.join('\n'), err: tagged(guest.output(), `${k}!`).join('\n') }
}

/** Which side prints a result row: perftest BW servers print the client's; read/atomic latency servers print none. */
const printsRow = (s: PerftestStep, side: 'server' | 'client'): boolean => side === 'client' || s.kind === 'bw' || s.verb === 'write' || s.verb === 'send'

/** The rows the host (`hostOut`) and the guest's `tool` (`guestOut`) printed for step `s`, logged under `label`. */
export function stepRows(label: string, s: PerftestStep, tool: string, hostOut: string, guestOut: string): { hostSide: 'server' | 'client'; rows: StepRows } {
  const hostSide = s.guest === 'server' ? 'client' : 'server'
  const dur = s.duration !== undefined
  const rows: StepRows = []
  if (printsRow(s, hostSide)) rows.push([HOST, resultRow(hostOut, s.kind, dur)])
  if (printsRow(s, s.guest)) rows.push([tool, resultRow(guestOut, s.kind, dur)])
  console.info(`[${label}] step ${s.k} rows:\n  host:  ${(kindRow(s.kind, dur).exec(hostOut) ?? [''])[0]}\n  guest: ${(kindRow(s.kind, dur).exec(guestOut) ?? [''])[0]}`)
  return { hostSide, rows }
}

/**
 * A BW server (but a SEND receiver) prints the client's figures, as received in the report
 * exchange: then the two rows must agree. Figures softroce measured must be positive and finite;
 * those perftest measured under TCG rest on its rdtsc-sampled CPU MHz, which a loaded host throws
 * off (0.00, or inf when its clock sampling gives up), so they are only checked for form.
 */
export function expectStepFigures(s: PerftestStep, hostSide: 'server' | 'client', rows: StepRows): void {
  const relayed = s.kind === 'bw' && s.verb !== 'send'
  if (relayed && s.duration === undefined) expect(rows[0]![1], 'the server printed the client\'s figures').toEqual(rows[1]![1])
  else if (relayed) {
    // -D: perftest's printed row and the report it exchanges were seen 0.01 apart (11.63 / 11.62)
    const [a, b] = [rows[0]![1]!, rows[1]![1]!]
    expect({ size: a.size, iters: a.iters }, 'the server printed the client\'s figures').toEqual({ size: b.size, iters: b.iters })
    expect(Math.abs(a.figure - b.figure), `the server printed the client's figures: ${a.figure} / ${b.figure}`).toBeLessThanOrEqual(0.0101)
  }
  const ours = rows.find(([who]) => who === HOST)?.[1]
  if (ours !== undefined && !(relayed && hostSide === 'server')) {
    expect(ours!.figure, 'softroce\'s figure').toBeGreaterThan(0)
    expect(ours!.figure, 'softroce\'s figure').toBeLessThan(Infinity)
  }
}

/** softroce took every packet of rxe's: its --stats line shows none failed the ICRC or was malformed. */
export function expectNoRxeDrops(stderr: string): void {
  const sr = JSON.parse(/^softroce counters: (.*)$/m.exec(stderr)?.[1] ?? 'null') as SoftroceCounters | null
  expect(sr, `--stats line in: ${stderr}`).not.toBeNull()
  expect(sr!.drops.badIcrc, 'softroce dropped rxe packets for a bad ICRC').toBe(0)
  expect(sr!.drops.malformed).toBe(0)
}
