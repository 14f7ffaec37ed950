/** Hand-written SVG charts for the bench report: a line chart (log2 x axis) and a grouped bar chart. No dependency. */

const W = 840
const H = 420
const M = { left: 70, right: 260, top: 40, bottom: 60 }
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f']

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
const num = (n: number): string => (Number.isFinite(n) ? String(Math.round(n * 100) / 100) : '0')

/** A "nice" upper bound and tick step for values up to `max`. */
export function niceScale(max: number, ticks = 5): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.2 }
  const raw = max / ticks
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!
  return { top: Math.ceil(max / step) * step, step }
}

function frame(title: string, yLabel: string, xLabel: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - M.right / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="16" y="${(M.top + H - M.bottom) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(M.top + H - M.bottom) / 2})">${esc(yLabel)}</text>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 14}" text-anchor="middle">${esc(xLabel)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n')
}

function yAxis(max: number, fmt: (v: number) => string, log = false): { y: (v: number) => number; lines: string[] } {
  const plot = H - M.top - M.bottom
  const lines: string[] = []
  let y: (v: number) => number
  let ticks: number[]
  if (log) {
    // Powers of ten from 1 up: latencies span µs to seconds.
    const decades = Math.max(1, Math.ceil(Math.log10(Math.max(max, 10))))
    y = (v) => H - M.bottom - (Math.log10(Math.max(v, 1)) / decades) * plot
    ticks = Array.from({ length: decades + 1 }, (_, i) => 10 ** i)
  } else {
    const { top, step } = niceScale(max)
    y = (v) => H - M.bottom - (v / top) * plot
    ticks = []
    for (let v = 0; v <= top + step / 2; v += step) ticks.push(v)
  }
  for (const v of ticks) {
    lines.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${num(y(v))}" y2="${num(y(v))}" stroke="#e5e5e5"/>`)
    lines.push(`<text x="${M.left - 6}" y="${num(y(v) + 4)}" text-anchor="end">${esc(fmt(v))}</text>`)
  }
  lines.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/>`, `<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`)
  return { y, lines }
}

function legend(names: readonly string[], dashed: (i: number) => boolean = () => false): string[] {
  return names.flatMap((n, i) => {
    const y = M.top + 10 + i * 20
    const x = W - M.right + 16
    return [`<line x1="${x}" x2="${x + 24}" y1="${y}" y2="${y}" stroke="${COLORS[i % COLORS.length]}" stroke-width="3"${dashed(i) ? ' stroke-dasharray="6 4"' : ''}/>`, `<text x="${x + 30}" y="${y + 4}">${esc(n)}</text>`]
  })
}

export interface LineSeries {
  readonly name: string
  /** Drawn dashed (baselines). */
  readonly dashed?: boolean
  readonly points: ReadonlyArray<readonly [x: number, y: number]>
}

/** Lines over a log2 x axis (message sizes). */
export function lineChart(o: { title: string; xLabel: string; yLabel: string; series: readonly LineSeries[]; xFormat: (x: number) => string; yFormat: (y: number) => string }): string {
  const xs = [...new Set(o.series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b)
  const maxY = Math.max(0, ...o.series.flatMap((s) => s.points.map((p) => p[1])))
  const { y, lines } = yAxis(maxY, o.yFormat)
  const lo = Math.log2(xs[0] ?? 1)
  const hi = Math.log2(xs.at(-1) ?? 2)
  const x = (v: number): number => M.left + 20 + ((Math.log2(v) - lo) / Math.max(1e-9, hi - lo)) * (W - M.left - M.right - 40)
  const body = [...lines]
  for (const v of xs) body.push(`<text x="${num(x(v))}" y="${H - M.bottom + 18}" text-anchor="middle">${esc(o.xFormat(v))}</text>`)
  o.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]
    const pts = s.points.map((p) => `${num(x(p[0]))},${num(y(p[1]))}`).join(' ')
    body.push(`<polyline fill="none" stroke="${c}" stroke-width="2.5"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''} points="${pts}"><title>${esc(s.name)}</title></polyline>`)
    for (const p of s.points) body.push(`<circle cx="${num(x(p[0]))}" cy="${num(y(p[1]))}" r="3" fill="${c}"><title>${esc(`${s.name}: ${o.xFormat(p[0])} → ${o.yFormat(p[1])}`)}</title></circle>`)
  })
  body.push(...legend(o.series.map((s) => s.name), (i) => o.series[i]?.dashed === true))
  return frame(o.title, o.yLabel, o.xLabel, body)
}

export interface BarGroup {
  readonly label: string
  readonly bars: ReadonlyArray<{ readonly name: string; readonly value: number }>
}

/** Groups of bars (e.g. per provider and percentile: baseline vs subject); `log` for a log10 y axis (values below 1 sit on the axis). */
export function barChart(o: { title: string; yLabel: string; xLabel: string; groups: readonly BarGroup[]; yFormat: (y: number) => string; log?: boolean }): string {
  const names = [...new Set(o.groups.flatMap((g) => g.bars.map((b) => b.name)))]
  const maxY = Math.max(0, ...o.groups.flatMap((g) => g.bars.map((b) => b.value)))
  const { y, lines } = yAxis(maxY, o.yFormat, o.log === true)
  const slot = (W - M.left - M.right) / Math.max(1, o.groups.length)
  const barW = Math.max(4, (slot * 0.8) / Math.max(1, names.length))
  const body = [...lines]
  o.groups.forEach((g, gi) => {
    const x0 = M.left + gi * slot + slot * 0.1
    body.push(`<text x="${num(x0 + (barW * names.length) / 2)}" y="${H - M.bottom + 18}" text-anchor="middle">${esc(g.label)}</text>`)
    for (const b of g.bars) {
      const i = names.indexOf(b.name)
      const top = y(b.value)
      body.push(`<rect x="${num(x0 + i * barW)}" y="${num(top)}" width="${num(barW - 2)}" height="${num(H - M.bottom - top)}" fill="${COLORS[i % COLORS.length]}"><title>${esc(`${g.label} ${b.name}: ${o.yFormat(b.value)}`)}</title></rect>`)
    }
  })
  body.push(...legend(names))
  return frame(o.title, o.yLabel, o.xLabel, body)
}
