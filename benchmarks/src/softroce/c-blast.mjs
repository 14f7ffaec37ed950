// The C UDP GSO+GRO blast (udp-gso-blast.c), built with the system's cc into the temp folder
// the first time (keyed by the source's hash) and run as one process per measurement.
import { createHash } from 'node:crypto'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const source = new URL('./udp-gso-blast.c', import.meta.url).pathname

/** The built program's path, or `{ skipped }` saying why it could not be built. */
export function buildCBlast() {
  const hash = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12)
  const dir = join(tmpdir(), 'rdma-session-bench')
  const bin = join(dir, `udp-gso-blast-${hash}`)
  if (existsSync(bin)) return { bin }
  mkdirSync(dir, { recursive: true })
  const cc = process.env.CC ?? 'cc'
  const r = spawnSync(cc, ['-O2', '-o', bin, source], { encoding: 'utf8' })
  if (r.error !== undefined) return { skipped: `${cc} not found (${r.error.code})` }
  if (r.status !== 0) return { skipped: `${cc} failed: ${r.stderr.trim().split('\n')[0]}` }
  return { bin }
}

/**
 * One blast of `datagrams` datagrams of `size` bytes, at most `window` unanswered, an answer
 * every `ackEvery`: { datagrams, seconds, senderCpu, receiverCpu, lost }.
 */
export function runCBlast(bin, { size, datagrams, window, ackEvery }) {
  const out = execFileSync(bin, [size, datagrams, window, ackEvery].map(String), { encoding: 'utf8', timeout: 60_000 })
  return JSON.parse(out)
}
