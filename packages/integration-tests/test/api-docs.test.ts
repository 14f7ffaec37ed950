/** The API reference (pnpm docs:api, typedoc) covers every public package, each by its exports. */
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const read = (path: string): Record<string, unknown> => JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as Record<string, unknown>

describe('API reference configuration', () => {
  const config = read('typedoc.json') as { entryPoints: string[]; treatWarningsAsErrors: boolean; packageOptions: { entryPoints: string[] } }

  it('lists every published package of the workspace and treats warnings as errors', () => {
    const published = readdirSync(join(ROOT, 'packages'))
      .filter((dir) => (read(`packages/${dir}/package.json`) as { private?: boolean }).private !== true)
      .map((dir) => `packages/${dir}`)
      .sort()
    expect([...config.entryPoints].sort()).toEqual(published)
    expect(config.treatWarningsAsErrors).toBe(true)
  })

  it('documents each entry point a package exports', () => {
    for (const dir of config.entryPoints) {
      const manifest = read(`${dir}/package.json`) as { exports: Record<string, unknown> }
      let entries = config.packageOptions.entryPoints
      try {
        entries = (read(`${dir}/typedoc.json`) as { entryPoints: string[] }).entryPoints
      } catch {
        // the shared packageOptions apply
      }
      const subpaths = Object.keys(manifest.exports).filter((k) => k !== './package.json')
      // '.' is src/index.ts; './name' is src/name.ts.
      const expected = subpaths.map((k) => (k === '.' ? 'src/index.ts' : `src/${k.slice(2)}.ts`)).sort()
      expect([...entries].sort(), dir).toEqual(expected)
    }
  })
})
