/**
 * A strict reader of the Prometheus text format 0.0.4, with the rules Prometheus' own parser and
 * `promtool check metrics` apply: names and label names by the grammar, escapes, HELP and TYPE at
 * most once and before the family's samples, each family's lines together, no duplicate series
 * or labels, counters named *_total, and histograms whole (every series with cumulative
 * `le` buckets ending in +Inf, +Inf equal to _count, a _sum). It throws on the first violation.
 */

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

export interface ParsedSample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface ParsedFamily {
  readonly name: string
  help: string | null
  type: string
  readonly samples: ParsedSample[]
}

function fail(lineNo: number, line: string, why: string): never {
  throw new Error(`exposition line ${lineNo}: ${why}: ${JSON.stringify(line)}`)
}

function parseValue(text: string): number | null {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? Number(text) : null
}

/** Label pairs `{a="x",b="y"}` starting at `text[0] === '{'`; returns the labels and the rest after `}`. */
function parseLabels(text: string, lineNo: number, line: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {}
  let i = 1
  while (text[i] !== '}') {
    const name = /^[^=]*/.exec(text.slice(i))![0]
    if (!LABEL.test(name)) fail(lineNo, line, `invalid label name '${name}'`)
    if (name.startsWith('__')) fail(lineNo, line, `reserved label name '${name}'`)
    if (name in labels) fail(lineNo, line, `label '${name}' given twice`)
    i += name.length
    if (text[i] !== '=' || text[i + 1] !== '"') fail(lineNo, line, 'expected ="')
    i += 2
    let value = ''
    for (;;) {
      const c = text[i]
      if (c === undefined) fail(lineNo, line, 'unterminated label value')
      if (c === '"') break
      if (c === '\\') {
        const e = text[i + 1]
        if (e === '\\') value += '\\'
        else if (e === '"') value += '"'
        else if (e === 'n') value += '\n'
        else fail(lineNo, line, `invalid escape \\${e ?? ''} in a label value`)
        i += 2
      } else {
        value += c
        i++
      }
    }
    labels[name] = value
    i++
    if (text[i] === ',') i++
    else if (text[i] !== '}') fail(lineNo, line, 'expected , or } after a label')
  }
  return { labels, rest: text.slice(i + 1) }
}

const familyOf = (sample: string, types: ReadonlyMap<string, ParsedFamily>): string => {
  const base = sample.replace(/_(bucket|sum|count)$/, '')
  return base !== sample && types.get(base)?.type === 'histogram' ? base : sample
}

/** Parses `text` strictly; the families in order of appearance. */
export function parseStrictExposition(text: string): ParsedFamily[] {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition does not end with a newline')
  const families = new Map<string, ParsedFamily>()
  const series = new Set<string>()
  const closed = new Set<string>()
  let current: string | null = null
  const enter = (name: string, lineNo: number, line: string): ParsedFamily => {
    if (current !== name) {
      if (closed.has(name)) fail(lineNo, line, `lines of ${name} are not together`)
      if (current !== null) closed.add(current)
      current = name
    }
    let f = families.get(name)
    if (f === undefined) families.set(name, (f = { name, help: null, type: 'untyped', samples: [] }))
    return f
  }
  const lines = text.split('\n').slice(0, -1)
  lines.forEach((line, index) => {
    const lineNo = index + 1
    if (line === '') return
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line)
    if (meta !== null) {
      const [, kind, name, rest = ''] = meta
      if (!NAME.test(name!)) fail(lineNo, line, `invalid metric name '${name}'`)
      const f = enter(name!, lineNo, line)
      if (kind === 'HELP') {
        if (f.help !== null) fail(lineNo, line, 'HELP given twice')
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) fail(lineNo, line, 'invalid escape in HELP')
        f.help = rest
      } else {
        if (f.type !== 'untyped' || f.samples.length > 0) fail(lineNo, line, 'TYPE given twice or after samples')
        if (!TYPES.has(rest)) fail(lineNo, line, `unknown type '${rest}'`)
        f.type = rest
      }
      return
    }
    if (line.startsWith('#')) return
    const name = /^[^\s{]*/.exec(line)![0]
    if (!NAME.test(name)) fail(lineNo, line, `invalid metric name '${name}'`)
    let rest = line.slice(name.length)
    let labels: Record<string, string> = {}
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, lineNo, line))
    const parts = rest.split(' ')
    if (parts[0] !== '' || parts.length < 2 || parts.length > 3) fail(lineNo, line, 'expected one space, a value and an optional timestamp')
    const value = parseValue(parts[1]!)
    if (value === null) fail(lineNo, line, `invalid value '${parts[1]}'`)
    if (parts[2] !== undefined && !/^-?\d+$/.test(parts[2])) fail(lineNo, line, `invalid timestamp '${parts[2]}'`)
    const f = enter(familyOf(name, families), lineNo, line)
    if (f.type === 'histogram' && name === f.name) fail(lineNo, line, 'a histogram sample without _bucket, _sum or _count')
    if (f.type === 'counter' && !name.endsWith('_total')) fail(lineNo, line, 'a counter not named *_total')
    if (name.endsWith('_bucket') && f.type === 'histogram' && !('le' in labels)) fail(lineNo, line, 'a bucket without le')
    const key = `${name}{${Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`
    if (series.has(key)) fail(lineNo, line, 'duplicate series')
    series.add(key)
    f.samples.push({ name, labels, value })
  })
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f)
  return [...families.values()]
}

function checkHistogram(f: ParsedFamily): void {
  const bySeries = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>()
  for (const s of f.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    let h = bySeries.get(key)
    if (h === undefined) bySeries.set(key, (h = { buckets: [] }))
    if (s.name.endsWith('_bucket')) {
      const bound = parseValue(le!)
      if (bound === null) throw new Error(`${f.name}: invalid le '${le}'`)
      h.buckets.push([bound, s.value])
    } else if (s.name.endsWith('_sum')) h.sum = s.value
    else h.count = s.value
  }
  for (const [key, h] of bySeries) {
    const where = `${f.name} ${key}`
    if (h.sum === undefined || h.count === undefined) throw new Error(`${where}: _sum or _count missing`)
    for (let i = 1; i < h.buckets.length; i++) {
      if (!(h.buckets[i]![0] > h.buckets[i - 1]![0])) throw new Error(`${where}: le not ascending`)
      if (h.buckets[i]![1] < h.buckets[i - 1]![1]) throw new Error(`${where}: bucket counts not cumulative`)
    }
    const last = h.buckets.at(-1)
    if (last === undefined || last[0] !== Infinity) throw new Error(`${where}: no le="+Inf" bucket`)
    if (last[1] !== h.count) throw new Error(`${where}: +Inf bucket ${last[1]} differs from _count ${h.count}`)
  }
}

/** Samples by series, `name{a="x",b="y"}` with the labels in the order given. */
export function samplesBySeries(families: readonly ParsedFamily[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const f of families) {
    for (const s of f.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`)
      out.set(`${s.name}${labels.length === 0 ? '' : `{${labels.join(',')}}`}`, s.value)
    }
  }
  return out
}
