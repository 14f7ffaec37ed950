/**
 * Checks that a chart is one a reader can use (title and desc, labelled axes, legend, no log axis)
 * and renders charts to PNG with resvg, kept under test-artifacts/ for a person to look at.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Resvg } from '@resvg/resvg-js'
import { expect } from 'vitest'

export const ARTIFACTS = join(import.meta.dirname, '..', 'test-artifacts', 'charts')

export function expectReadable(svg: string): void {
  expect(svg).toMatch(/<svg [^>]*role="img" aria-labelledby="chart-title chart-desc"/)
  expect(svg).toMatch(/<title id="chart-title">[^<]+<\/title>\n<desc id="chart-desc">[^<]+<\/desc>/)
  // Every y axis label names its unit in brackets; the x axis label too.
  const rotated = [...svg.matchAll(/<text [^>]*transform="rotate\(-90[^>]*>([^<]+)<\/text>/g)].map((m) => m[1]!)
  expect(rotated.length).toBeGreaterThan(0)
  for (const label of rotated) expect(label).toMatch(/\(.+\)/)
  expect(svg).not.toMatch(/log scale\)<\/text>[\s\S]*<rect x=/) // bars never sit on a log axis
  // The title is centred on the whole chart.
  const width = Number(/viewBox="0 0 (\d+) /.exec(svg)![1])
  expect(svg).toContain(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">`)
}

/** Renders every SVG in `dir` to test-artifacts/charts/<name>-<file>.png; checks the text was drawn (a font was found). */
export function renderArtifacts(name: string, dir: string): string[] {
  mkdirSync(ARTIFACTS, { recursive: true })
  const written: string[] = []
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.svg'))) {
    const svg = readFileSync(join(dir, file), 'utf8')
    const image = new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' }, fitTo: { mode: 'width', value: 960 } }).render()
    expect(image.width).toBe(960)
    // The title row (y 8..28) must hold dark pixels: text was rendered, so a font was found.
    const pixels = image.pixels // a getter that copies the whole bitmap: read it once
    let dark = 0
    for (let y = 8; y < 28; y++) for (let x = 200; x < 760; x++) if (pixels[(y * image.width + x) * 4]! < 100) dark++
    expect(dark, `no text drawn in ${file}: no usable font (install fonts-dejavu-core)`).toBeGreaterThan(200)
    const out = join(ARTIFACTS, `${name}-${file.replace(/\.svg$/, '.png')}`)
    writeFileSync(out, image.asPng())
    written.push(out)
  }
  return written
}
