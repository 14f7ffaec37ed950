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
 * Alternates baseline and subject for `rounds` rounds (after one warm-up each) and
 * returns the median times and their ratio subject/baseline.
 */
export async function compare({ rounds = 7, baseline, subject }) {
  await baseline()
  await subject()
  const b = []
  const s = []
  for (let i = 0; i < rounds; i++) {
    b.push(await timeMs(baseline))
    s.push(await timeMs(subject))
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
