// Small timing helpers shared by the benchmarks: median of rounds, interleaved so
// machine noise hits the baseline and the subject alike.

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/** Runs `fn` once and returns elapsed milliseconds. */
export async function timeMs(fn) {
  const t0 = performance.now()
  await fn()
  return performance.now() - t0
}

/**
 * Alternates baseline and subject for `rounds` rounds (after one warm-up each) and returns the
 * median times and their ratio subject/baseline. The order flips every round (ABBA), so neither
 * side always runs right after the other (whose garbage the next one collects). (A forced
 * collection before each run was tried and dropped: it halved both sides' speed, V8 starting
 * over after a full collection, and that common cost hid the difference being measured.)
 */
export async function compare({ rounds = 7, baseline, subject }) {
  await baseline()
  await subject()
  const b = []
  const s = []
  const timed = async (fn, into) => {
    into.push(await timeMs(fn))
  }
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      await timed(baseline, b)
      await timed(subject, s)
    } else {
      await timed(subject, s)
      await timed(baseline, b)
    }
  }
  const baselineMs = median(b)
  const subjectMs = median(s)
  return { baselineMs, subjectMs, ratio: subjectMs / baselineMs }
}

/** Runs `fn` once and returns elapsed wall-clock and CPU (user + system, this process) milliseconds. */
export async function timeBoth(fn) {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await fn()
  const wall = performance.now() - t0
  const c = process.cpuUsage(c0)
  return { wall, cpu: (c.user + c.system) / 1000 }
}

function spreadOf(ratios) {
  const sorted = [...ratios].sort((x, y) => x - y)
  const q = (f) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))]
  return { ratio: median(ratios), min: sorted[0], p25: q(0.25), p75: q(0.75), max: sorted[sorted.length - 1] }
}

/**
 * Per-round ratios: each round times the baseline and the subject back to back (the order flips
 * every round, ABBA…, so neither side always inherits the other's garbage or a burst of load),
 * and keeps the round's ratio subject/baseline, on wall-clock time and on the process's CPU time.
 * Load from other processes changes both halves of a round alike, so the median ratio is steadier
 * than a ratio of medians; CPU time leaves out the time this process waited for a core (wall
 * time counts it, so on a loaded machine a round where one side was preempted reads off by
 * several times); the spread of the per-round ratios shows how noisy the run was.
 * `warmup` rounds run first and are dropped.
 */
export async function compareRounds({ rounds = 41, warmup = 3, baseline, subject }) {
  const wall = []
  const cpu = []
  const b = []
  const s = []
  for (let i = -warmup; i < rounds; i++) {
    let tb
    let ts
    if ((i & 1) === 0) {
      tb = await timeBoth(baseline)
      ts = await timeBoth(subject)
    } else {
      ts = await timeBoth(subject)
      tb = await timeBoth(baseline)
    }
    if (i < 0) continue
    b.push(tb)
    s.push(ts)
    wall.push(ts.wall / tb.wall)
    cpu.push(ts.cpu / tb.cpu)
  }
  return {
    rounds,
    wall: spreadOf(wall),
    cpu: spreadOf(cpu),
    baselineMs: median(b.map((t) => t.wall)),
    subjectMs: median(s.map((t) => t.wall)),
    baselineCpuMs: { median: median(b.map((t) => t.cpu)), min: Math.min(...b.map((t) => t.cpu)) },
    subjectCpuMs: { median: median(s.map((t) => t.cpu)), min: Math.min(...s.map((t) => t.cpu)) },
  }
}

export function report(name, lines, verdict) {
  console.log(`\n## ${name}`)
  for (const l of lines) console.log(`  ${l}`)
  if (verdict) console.log(`  ${verdict.ok ? 'PASS' : 'MISS'}: ${verdict.text}`)
  return verdict?.ok ?? true
}

export const fmt = (n, d = 2) => Number(n).toFixed(d)
