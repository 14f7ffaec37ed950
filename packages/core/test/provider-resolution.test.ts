import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SPECIFICATION_VERSION, applicationImporter, isRdmaError, loadProvider, providerSearchPlaces, type RdmaError } from '../src/index.js'
import { SCRIPTED_CAPS } from './fakes/scripted-provider.js'

/**
 * A fixture laid out like an application with its own node_modules:
 *   root/app/package.json, root/app/bin/main.mjs (the entry script),
 *   root/app/node_modules/@acme/provider-fake (ESM-only: exports.import, no ./package.json export),
 *   root/elsewhere (a working directory that has nothing installed),
 *   root/link/main.mjs -> root/app/bin/main.mjs (an entry script reached through a symlink).
 */
let root: string
const app = () => join(root, 'app')
const entry = () => join(app(), 'bin', 'main.mjs')
const elsewhere = () => join(root, 'elsewhere')

beforeAll(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'provider-resolution-')))
  mkdirSync(join(app(), 'bin'), { recursive: true })
  mkdirSync(elsewhere())
  mkdirSync(join(root, 'link'))
  writeFileSync(join(app(), 'package.json'), JSON.stringify({ name: 'app', type: 'module' }))
  writeFileSync(entry(), '')
  symlinkSync(entry(), join(root, 'link', 'main.mjs'))
  const pkg = join(app(), 'node_modules', '@acme', 'provider-fake')
  const shape = JSON.stringify({ specificationVersion: SPECIFICATION_VERSION, capabilities: SCRIPTED_CAPS })
  mkdirSync(join(pkg, 'dist'), { recursive: true })
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@acme/provider-fake', type: 'module', exports: { '.': { import: './dist/index.js', require: './dist/index.cjs' } } }))
  writeFileSync(join(pkg, 'dist', 'index.js'), `export const createProvider = (o) => ({ ...${shape}, name: 'fake-esm', options: o, openDevice: async () => { throw new Error('unused') } })\n`)
  writeFileSync(join(pkg, 'dist', 'index.cjs'), `exports.createProvider = () => ({ ...${shape}, name: 'fake-cjs', openDevice: async () => { throw new Error('unused') } })\n`)
  writeFileSync(join(elsewhere(), 'local-provider.mjs'), `export const createProvider = () => ({ ...${shape}, name: 'fake-path', openDevice: async () => { throw new Error('unused') } })\n`)
})
afterAll(() => rmSync(root, { recursive: true, force: true }))

describe('provider resolution', () => {
  it('looks from the entry script\'s folder (its real path) and then the working directory', () => {
    expect(providerSearchPlaces(entry(), elsewhere())).toEqual([{ role: "entry script's folder", dir: join(app(), 'bin') }, { role: 'working directory', dir: elsewhere() }])
    expect(providerSearchPlaces(join(root, 'link', 'main.mjs'), elsewhere())[0]!.dir).toBe(join(app(), 'bin'))
    expect(providerSearchPlaces('', elsewhere())).toEqual([{ role: 'working directory', dir: elsewhere() }])
    expect(providerSearchPlaces(entry(), join(app(), 'bin'))).toHaveLength(1)
  })

  it('finds a provider installed for the application when run from another working directory, through its import condition', async () => {
    const provider = await loadProvider('@acme/provider-fake', { x: 1 }, applicationImporter(entry(), elsewhere()))
    expect(provider.name).toBe('fake-esm')
    expect((provider as unknown as { options: unknown }).options).toEqual({ x: 1 })
  })

  it('finds it from the working directory when the entry script is elsewhere', async () => {
    const provider = await loadProvider('@acme/provider-fake', {}, applicationImporter(join(elsewhere(), 'main.mjs'), app()))
    expect(provider.name).toBe('fake-esm')
  })

  it('resolves a path against the working directory', async () => {
    const provider = await loadProvider('./local-provider.mjs', {}, applicationImporter(entry(), elsewhere()))
    expect(provider.name).toBe('fake-path')
  })

  it('says where it looked and where to install when the package is nowhere', async () => {
    const err = await loadProvider('@acme/provider-absent', {}, applicationImporter(entry(), elsewhere())).catch((e: unknown) => e)
    expect(isRdmaError(err, 'ERR_PROVIDER_MISSING')).toBe(true)
    const e = err as RdmaError
    expect(e.details.searched).toEqual([join(app(), 'bin'), elsewhere()])
    expect(e.details.installIn).toBe(app())
    expect(e.message).toContain(`the entry script's folder ${join(app(), 'bin')}`)
    expect(e.message).toContain(`the working directory ${elsewhere()}`)
    expect(e.message).toContain(`pnpm add @acme/provider-absent (in ${app()}, the application's package)`)
  })

  it('passes through a provider that is found but fails to load', async () => {
    const pkg = join(app(), 'node_modules', '@acme', 'provider-broken')
    mkdirSync(pkg, { recursive: true })
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@acme/provider-broken', type: 'module', main: 'index.js' }))
    writeFileSync(join(pkg, 'index.js'), "import '@acme/dependency-absent'\n")
    const err = await loadProvider('@acme/provider-broken', {}, applicationImporter(entry(), elsewhere())).catch((e: unknown) => e)
    expect(isRdmaError(err, 'ERR_PROVIDER_MISSING')).toBe(false)
    expect((err as Error).message).toContain('@acme/dependency-absent')
  })
})
