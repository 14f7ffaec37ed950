/**
 * Data rates as users write them ('2Gbps', '100Mb/s', '10MB/s'), read by networking convention
 * and case-sensitively: `b` is a bit and `B` a byte; `k`/`K`, `M`, `G` are powers of 1000 and
 * `Ki`, `Mi`, `Gi` powers of 1024 (bytes only). The one parser for every rate the SDK reads.
 */
import { InvalidArgumentError } from '../errors.js'

/** The largest rate accepted, in bytes per second (8 Pbit/s); the control plane carries no more. */
export const MAX_RATE_BYTES_PER_SECOND = 1e15

const DECIMAL_PREFIXES: readonly (readonly [string, number])[] = [['', 1], ['k', 1e3], ['K', 1e3], ['M', 1e6], ['G', 1e9]]
const BINARY_PREFIXES: readonly (readonly [string, number])[] = [['Ki', 2 ** 10], ['Mi', 2 ** 20], ['Gi', 2 ** 30]]
const BIT_SUFFIXES = ['bit/s', 'bps', 'b/s']
const BYTE_SUFFIXES = ['B/s', 'Bps']

function unitTable(): ReadonlyMap<string, number> {
  const units = new Map<string, number>()
  for (const [prefix, factor] of DECIMAL_PREFIXES) {
    for (const suffix of BIT_SUFFIXES) units.set(prefix + suffix, factor / 8)
    for (const suffix of BYTE_SUFFIXES) units.set(prefix + suffix, factor)
  }
  for (const [prefix, factor] of BINARY_PREFIXES) units.set(`${prefix}B/s`, factor)
  return units
}

/** Every accepted unit spelling and its value in bytes per second. */
export const RATE_UNITS: ReadonlyMap<string, number> = unitTable()

const ACCEPTED: readonly string[] = Object.freeze([...RATE_UNITS.keys()])
const RATE_TEXT = /^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(\S+)\s*$/

function rateError(name: string, rate: unknown, why: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${name}: cannot read rate ${typeof rate === 'string' ? `'${rate}'` : String(rate)}: ${why}. ` +
      `Give bytes per second as a number, or a number and a unit (case matters: b = bit, B = byte), one of: ${ACCEPTED.join(', ')}`,
    { attribute: name, accepted: ACCEPTED },
  )
}

/** Why a unit is not accepted; when only its case is wrong, the spellings it may have meant. */
function unknownUnit(unit: string): string {
  const sameLetters = ACCEPTED.filter((u) => u.toLowerCase() === unit.toLowerCase())
  if (sameLetters.length === 0) return `unknown unit '${unit}'`
  const meaning = (u: string): string => `'${u}' (${BIT_SUFFIXES.some((s) => u.endsWith(s)) ? 'bits' : 'bytes'})`
  return `units are case-sensitive and '${unit}' is ${sameLetters.length > 1 ? 'ambiguous' : 'not one of them'}; write ${sameLetters.map(meaning).join(' or ')}`
}

/**
 * Reads a rate: a number of bytes per second, or a string such as '2Gbps', '500 Mbps', '100Mb/s',
 * '80Mbit/s' (bits) or '10MB/s', '10MBps', '64MiB/s' (bytes). Returns bytes per second.
 * Throws ERR_INVALID_ARGUMENT, naming `name` and listing the accepted units, for anything else.
 */
export function parseRate(rate: number | string, name = 'rate'): number {
  let bytesPerSecond: number
  if (typeof rate === 'number') {
    bytesPerSecond = rate
  } else if (typeof rate === 'string') {
    const m = RATE_TEXT.exec(rate)
    if (m === null) throw rateError(name, rate, 'expected a number followed by a unit')
    const factor = RATE_UNITS.get(m[2]!)
    if (factor === undefined) throw rateError(name, rate, unknownUnit(m[2]!))
    bytesPerSecond = Number(m[1]) * factor
  } else {
    throw rateError(name, rate, `expected a number or a string, got ${typeof rate}`)
  }
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) throw rateError(name, rate, 'a rate is a non-negative finite number of bytes per second')
  if (bytesPerSecond > MAX_RATE_BYTES_PER_SECOND) throw rateError(name, rate, 'the largest rate is 1e15 bytes per second (8 Pbit/s)')
  return bytesPerSecond
}
