/**
 * Memory of closed sessions is returned (issue 22, probe 3): one peer fills its QP quota on
 * softroce over ws (bulk QPs at MTU 256, what cost about 90 KiB each before the requester's
 * send-time ring became lazy), everything is closed, and RSS after a full GC is back within
 * 20 % of its level before. Runs in its own process (node --expose-gc, fixtures/quota-memory.mjs)
 * so nothing else in the test worker moves its RSS.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { FIXTURES } from './processes.js'

const run = promisify(execFile)
const QUOTA = 1024

describe('a filled and drained QP quota', () => {
  it(`${QUOTA} QPs: ERR_QUOTA at the limit; after closing, every handle is gone and RSS is within 20 % of before`, async () => {
    const { stdout, stderr } = await run(process.execPath, ['--expose-gc', join(FIXTURES, 'quota-memory.mjs'), String(QUOTA), '64'], { cwd: FIXTURES, timeout: 120_000 })
    const line = stdout.split('\n').find((l) => l.includes('"result"'))
    expect(line, `no result; stderr ${stderr}`).toBeDefined()
    const r = JSON.parse(line!) as { before: number; peak: number; after: number; filled: number; refused: { limit: string; max: number }; drained: Record<string, { qps: number; sessions: number; cqs: number }> }
    console.log(`[quota-memory] RSS before ${r.before} MiB, filled (${r.filled} QPs) ${r.peak} MiB, after closing ${r.after} MiB`)
    expect(r.refused).toMatchObject({ limit: 'qps', max: QUOTA })
    expect(r.filled).toBe(QUOTA)
    for (const side of ['server', 'client']) expect(r.drained[side], side).toMatchObject({ qps: 0, sessions: 0, cqs: 0 })
    expect(r.peak, 'the fill took memory').toBeGreaterThan(r.before)
    expect(r.after, 'RSS back within 20 % of before').toBeLessThanOrEqual(r.before * 1.2)
  })
})
