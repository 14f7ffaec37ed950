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

export function report(name, lines, verdict) {
  console.log(`\n## ${name}`)
  for (const l of lines) console.log(`  ${l}`)
  if (verdict) console.log(`  ${verdict.ok ? 'PASS' : 'MISS'}: ${verdict.text}`)
  return verdict?.ok ?? true
}

export const fmt = (n, d = 2) => Number(n).toFixed(d)
