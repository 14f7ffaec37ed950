import { UsageError } from '../command.js'

/** strtol(s, NULL, 0): decimal, 0x hex or 0 octal; unlike strtol, junk is an error. */
export function parseCInteger(text: string, option: string): number {
  const t = text.trim()
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(t)
  if (m === null) throw new UsageError(`${option}: not a number: '${text}'`)
  const body = m[2]!
  const n = /^0[xX]/.test(body) ? parseInt(body.slice(2), 16) : body.length > 1 && body.startsWith('0') ? parseInt(body, 8) : parseInt(body, 10)
  return m[1] === '-' ? -n : n
}

/** An optional integer option in C syntax within min..max; `fallback` when absent. */
export function inRange(text: string | undefined, option: string, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback
  const n = parseCInteger(text, option)
  if (n < min || n > max) throw new UsageError(`${option} must be ${min}..${max}, got ${text}`)
  return n
}
