/**
 * Hand-written SVG charts for the bench report, fit for a written report: a line chart (message
 * size on a log2 axis) and a grouped bar chart (linear axis from zero), each in one or more
 * panels with their own y scale, labelled axes with units, ticks with one number of decimals per
 * axis, whiskers for the spread, a legend, and <title>/<desc> for screen readers. No dependency.
 */

const W = 960
const TITLE_H = 86
const PANEL_H = 330
const AXIS_BELOW = 58
const LEGEND_ROW = 20
const PAD = { left: 78, right: 24, gap: 40 }
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f']

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
const num = (n: number): string => (Number.isFinite(n) ? String(Math.round(n * 100) / 100) : '0')

/** A "nice" upper bound and tick step for values up to `max`. */
export function niceScale(max: number, ticks = 5): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.2 }
  const raw = max / ticks
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9))!
  return { top: Math.ceil(max / step - 1e-9) * step, step }
}

/** Tick labels of one axis share their number of decimals: as many as the step needs (0.25 -> 2, 2.5 -> 1, 20 -> 0). */
export function tickLabels(step: number, top: number): string[] {
  let decimals = 0
  while (decimals < 6 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-6) decimals++
  const out: string[] = []
  for (let i = 0; i * step <= top + step / 2; i++) out.push((i * step).toFixed(decimals))
  return out
}

/** A value with its spread (e.g. median with the interquartile range, or min–max), drawn as a whisker. */
export interface Spread {
  readonly value: number
  readonly lo?: number
  readonly hi?: number
}

export interface ChartText {
  /** Shown centred on top and as the SVG <title>. */
  readonly title: string
  /** The SVG <desc>: what is measured, how, and what the whiskers mean. Shown as a subtitle too. */
  readonly desc: string
  /** The x axis label, with its unit. */
  readonly xLabel: string
}

interface Frame {
  readonly x0: number
  readonly x1: number
  readonly yTop: number
  readonly yBottom: number
}

/** The whole SVG: title, desc, panels' body, x label and the legend (line samples for line charts, swatches for bars). */
function svgDocument(text: ChartText, legendNames: readonly string[], lines: boolean, dashed: (name: string) => boolean, body: string[]): string {
  const legendLines = legendRows(legendNames)
  const height = TITLE_H + PANEL_H + AXIS_BELOW + legendLines.length * LEGEND_ROW + 12
  const legend: string[] = []
  legendLines.forEach((row, r) => {
    const widths = row.map((n) => 34 + n.length * 7 + 18)
    let x = (W - widths.reduce((a, b) => a + b, 0)) / 2
    const y = TITLE_H + PANEL_H + AXIS_BELOW + r * LEGEND_ROW + 6
    row.forEach((n, i) => {
      const c = COLORS[legendNames.indexOf(n) % COLORS.length]
      legend.push(
        lines
          ? `<line x1="${num(x)}" x2="${num(x + 26)}" y1="${y}" y2="${y}" stroke="${c}" stroke-width="3"${dashed(n) ? ' stroke-dasharray="6 4"' : ''}/>`
          : `<rect x="${num(x)}" y="${y - 6}" width="26" height="12" fill="${c}"/>`,
        `<text x="${num(x + 32)}" y="${y + 4}">${esc(n)}</text>`,
      )
      x += widths[i]!
    })
  })
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="12" role="img" aria-labelledby="chart-title chart-desc">`,
    `<title id="chart-title">${esc(text.title)}</title>`,
    `<desc id="chart-desc">${esc(text.desc)}</desc>`,
    `<rect width="${W}" height="${height}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${esc(text.title)}</text>`,
    ...wrap(text.desc, 150).slice(0, 3).map((line, i) => `<text x="${W / 2}" y="${40 + i * 14}" text-anchor="middle" font-size="11" fill="#555">${esc(line)}</text>`),
    ...body,
    `<text x="${W / 2}" y="${TITLE_H + PANEL_H + AXIS_BELOW - 14}" text-anchor="middle">${esc(text.xLabel)}</text>`,
    ...legend,
    '</svg>',
    '',
  ].join('\n')
}

/** Words into lines of at most `n` characters. */
function wrap(s: string, n: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of s.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > n) {
      lines.push(line)
      line = word
    } else line = line === '' ? word : `${line} ${word}`
  }
  if (line !== '') lines.push(line)
  return lines
}

function legendRows(names: readonly string[]): string[][] {
  const rows: string[][] = [[]]
  let width = 0
  for (const n of names) {
    const w = 34 + n.length * 7 + 18
    if (width + w > W - 40 && rows.at(-1)!.length > 0) {
      rows.push([])
      width = 0
    }
    rows.at(-1)!.push(n)
    width += w
  }
  return rows.filter((r) => r.length > 0)
}

/** Panel frames side by side under the title. */
function frames(count: number): Frame[] {
  const n = Math.max(1, count)
  const width = (W - PAD.left - PAD.right - (n - 1) * (PAD.gap + PAD.left - 30)) / n
  return Array.from({ length: n }, (_, i) => {
    const x0 = PAD.left + i * (width + PAD.gap + PAD.left - 30)
    return { x0, x1: x0 + width, yTop: TITLE_H + 24, yBottom: TITLE_H + PANEL_H - 10 }
  })
}

/** A linear y axis from 0 with gridlines, one-decimal-count tick labels, the axis label with its unit and the panel title. */
function yAxis(f: Frame, max: number, label: string, panelTitle: string): { y: (v: number) => number; lines: string[] } {
  const { top, step } = niceScale(max)
  const y = (v: number): number => f.yBottom - (Math.max(0, v) / top) * (f.yBottom - f.yTop)
  const lines: string[] = [`<text x="${num((f.x0 + f.x1) / 2)}" y="${f.yTop - 10}" text-anchor="middle" font-weight="bold">${esc(panelTitle)}</text>`]
  tickLabels(step, top).forEach((text, i) => {
    const v = i * step
    lines.push(`<line x1="${num(f.x0)}" x2="${num(f.x1)}" y1="${num(y(v))}" y2="${num(y(v))}" stroke="#e3e3e3"/>`)
    lines.push(`<text x="${num(f.x0 - 6)}" y="${num(y(v) + 4)}" text-anchor="end">${text}</text>`)
  })
  const mid = (f.yTop + f.yBottom) / 2
  const lx = f.x0 - 56
  lines.push(`<text x="${num(lx)}" y="${num(mid)}" text-anchor="middle" transform="rotate(-90 ${num(lx)} ${num(mid)})">${esc(label)}</text>`)
  lines.push(`<line x1="${num(f.x0)}" x2="${num(f.x0)}" y1="${f.yTop}" y2="${f.yBottom}" stroke="#333"/>`, `<line x1="${num(f.x0)}" x2="${num(f.x1)}" y1="${f.yBottom}" y2="${f.yBottom}" stroke="#333"/>`)
  return { y, lines }
}

function whisker(x: number, lo: number, hi: number, half = 4): string[] {
  if (!(Math.abs(hi - lo) >= 1)) return []
  return [`<path d="M${num(x)} ${num(lo)}V${num(hi)}M${num(x - half)} ${num(lo)}h${half * 2}M${num(x - half)} ${num(hi)}h${half * 2}" stroke="#222" stroke-width="1.2" fill="none"/>`]
}

const topOf = (s: Spread): number => Math.max(s.value, s.hi ?? s.value)

export interface LineSeries {
  readonly name: string
  /** Drawn dashed (baselines). */
  readonly dashed?: boolean
  readonly points: ReadonlyArray<{ readonly x: number } & Spread>
}

export interface LinePanel {
  readonly title: string
  /** The y axis label with its unit, e.g. "throughput (Gbit/s)". */
  readonly yLabel: string
  readonly series: readonly LineSeries[]
}

/** Lines over a log2 x axis (message sizes, ticks at the measured sizes), y linear from 0, whiskers at each point. */
export function lineChart(o: ChartText & { panels: readonly LinePanel[]; xFormat: (x: number) => string; yFormat: (y: number) => string }): string {
  const body: string[] = []
  const names = [...new Set(o.panels.flatMap((p) => p.series.map((s) => s.name)))]
  const isDashed = (n: string): boolean => o.panels.some((p) => p.series.some((s) => s.name === n && s.dashed === true))
  frames(o.panels.length).forEach((f, pi) => {
    const panel = o.panels[pi]
    if (panel === undefined) return
    const xs = [...new Set(panel.series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b)
    const { y, lines } = yAxis(f, Math.max(0, ...panel.series.flatMap((s) => s.points.map(topOf))), panel.yLabel, panel.title)
    body.push(...lines)
    const lo = Math.log2(xs[0] ?? 1)
    const hi = Math.log2(xs.at(-1) ?? 2)
    const x = (v: number): number => f.x0 + 18 + ((Math.log2(v) - lo) / Math.max(1e-9, hi - lo)) * (f.x1 - f.x0 - 36)
    for (const v of xs) body.push(`<line x1="${num(x(v))}" x2="${num(x(v))}" y1="${f.yBottom}" y2="${f.yBottom + 5}" stroke="#333"/>`, `<text x="${num(x(v))}" y="${f.yBottom + 18}" text-anchor="middle">${esc(o.xFormat(v))}</text>`)
    for (const s of panel.series) {
      const c = COLORS[names.indexOf(s.name) % COLORS.length]
      const pts = s.points.map((p) => `${num(x(p.x))},${num(y(p.value))}`).join(' ')
      body.push(`<polyline fill="none" stroke="${c}" stroke-width="2.5"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''} points="${pts}"><title>${esc(s.name)}</title></polyline>`)
      for (const p of s.points) {
        body.push(...whisker(x(p.x), y(p.lo ?? p.value), y(p.hi ?? p.value), 3))
        body.push(`<circle cx="${num(x(p.x))}" cy="${num(y(p.value))}" r="3.5" fill="${c}"><title>${esc(`${s.name}, ${o.xFormat(p.x)}: ${o.yFormat(p.value)}${p.lo === undefined ? '' : ` (${o.yFormat(p.lo)}–${o.yFormat(p.hi ?? p.value)})`}`)}</title></circle>`)
      }
    }
  })
  return svgDocument(o, names, true, isDashed, body)
}

export interface BarGroup {
  readonly label: string
  readonly bars: ReadonlyArray<{ readonly name: string } & Spread>
}

export interface BarPanel {
  readonly title: string
  /** The y axis label with its unit, e.g. "latency (µs)". */
  readonly yLabel: string
  readonly groups: readonly BarGroup[]
}

/** Groups of bars on a linear axis from zero, one panel per scale; each bar shows its value on top and its spread as a whisker. */
export function barChart(o: ChartText & { panels: readonly BarPanel[]; format: (v: number) => string }): string {
  const body: string[] = []
  const names = [...new Set(o.panels.flatMap((p) => p.groups.flatMap((g) => g.bars.map((b) => b.name))))]
  frames(o.panels.length).forEach((f, pi) => {
    const panel = o.panels[pi]
    if (panel === undefined) return
    // The scale fits the bars; a whisker that reaches past it is cut at the top and its end written there.
    const { y, lines } = yAxis(f, Math.max(0, ...panel.groups.flatMap((g) => g.bars.map((b) => b.value))) * 1.25, panel.yLabel, panel.title)
    const clip = (v: number): number => Math.max(f.yTop, y(v))
    body.push(...lines)
    const inPanel = names.filter((n) => panel.groups.some((g) => g.bars.some((b) => b.name === n)))
    const slot = (f.x1 - f.x0) / Math.max(1, panel.groups.length)
    const barW = Math.max(6, (slot * 0.8) / Math.max(1, inPanel.length))
    panel.groups.forEach((g, gi) => {
      const x0 = f.x0 + gi * slot + slot * 0.1
      body.push(`<text x="${num(x0 + (barW * inPanel.length) / 2)}" y="${f.yBottom + 18}" text-anchor="middle">${esc(g.label)}</text>`)
      for (const b of g.bars) {
        const i = inPanel.indexOf(b.name)
        const top = y(b.value)
        const cx = x0 + i * barW + (barW - 2) / 2
        body.push(`<rect x="${num(x0 + i * barW)}" y="${num(top)}" width="${num(barW - 2)}" height="${num(f.yBottom - top)}" fill="${COLORS[names.indexOf(b.name) % COLORS.length]}"><title>${esc(`${g.label}, ${b.name}: ${o.format(b.value)}${b.lo === undefined ? '' : ` (${o.format(b.lo)}–${o.format(b.hi ?? b.value)})`}`)}</title></rect>`)
        body.push(...whisker(cx, clip(b.lo ?? b.value), clip(b.hi ?? b.value), Math.min(5, barW / 4)))
        const cut = y(topOf(b)) < f.yTop
        if (cut) body.push(`<text x="${num(cx + 3)}" y="${num(f.yTop - 2)}" font-size="9" fill="#444">↑ ${esc(o.format(topOf(b)))}</text>`)
        body.push(`<text x="${num(cx)}" y="${num((cut ? top : clip(topOf(b))) - 4)}" text-anchor="middle" font-size="10">${esc(o.format(b.value))}</text>`)
      }
    })
  })
  return svgDocument(o, names, false, () => false, body)
}
