import { mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { installedProviders, isRdmaError, loadProvider, resolveProviderName, suggestProvider, type ProviderSearchPlace, type RdmaError } from '../src/index.js'

let root = ''
let places: ProviderSearchPlace[] = []
const notFound = (spec: string): Error => Object.assign(new Error(`Cannot find package '${spec}' imported from x`), { code: 'ERR_MODULE_NOT_FOUND' })

beforeAll(() => {
  // An application with three providers, the provider interface and an unrelated package installed.
  root = realpathSync(mkdtempSync(join(tmpdir(), 'provider-names-')))
  for (const pkg of ['provider-mock', 'provider-softroce', 'provider-verbs', 'provider-interface', 'core']) mkdirSync(join(root, 'node_modules', '@rdma-session', pkg), { recursive: true })
  places = [{ role: 'working directory', dir: root }]
})
afterAll(() => rmSync(root, { recursive: true, force: true }))

describe('provider names', () => {
  it('a short name stands for @rdma-session/provider-<name>; scoped names and paths are taken as they are', () => {
    expect(resolveProviderName('softroce')).toBe('@rdma-session/provider-softroce')
    expect(resolveProviderName('efa-v2')).toBe('@rdma-session/provider-efa-v2')
    expect(resolveProviderName('@acme/rdma-efa')).toBe('@acme/rdma-efa')
    expect(resolveProviderName('./my-provider.mjs')).toBe('./my-provider.mjs')
  })

  it('lists the installed providers (not the provider interface, not other packages)', () => {
    // Also what NODE_PATH holds (pnpm sets it to the workspace's packages), so: at least these.
    const installed = installedProviders(places)
    expect(installed).toEqual(expect.arrayContaining(['mock', 'softroce', 'verbs']))
    expect(installed).not.toContain('interface')
    expect(installed).toEqual([...installed].sort())
    expect(suggestProvider('softroc', ['mock', 'softroce'])).toBe('softroce')
    expect(suggestProvider('efa', ['mock', 'softroce'])).toBeNull()
  })

  it('refuses names that are neither short names nor scoped packages, with a did-you-mean from the installed providers', async () => {
    for (const [name, suggestion] of [['SoftRoCE', 'softroce'], ['Verbs', 'verbs'], ['provider-softroce', 'softroce'], ['interface', null], ['left_pad', null]] as const) {
      const err = await loadProvider(name, {}, async () => { throw new Error('must not import') }, places).catch((e: unknown) => e)
      expect(isRdmaError(err, 'ERR_PROVIDER_UNKNOWN'), name).toBe(true)
      expect((err as RdmaError).details.suggestion, name).toBe(suggestion)
      expect((err as RdmaError).details.installed).toEqual(installedProviders(places))
      expect((err as Error).message).toContain(suggestion === null ? `Installed providers: ${installedProviders(places).join(', ')}.` : `did you mean '${suggestion}'?`)
    }
  })

  it('a short name that is not installed: a typo of an installed one gets a did-you-mean, any other name the package to install', async () => {
    const imported: string[] = []
    const importer = async (spec: string): Promise<never> => { imported.push(spec); throw notFound(spec) }
    for (const [name, suggestion] of [['softroc', 'softroce'], ['mok', 'mock']] as const) {
      const err = await loadProvider(name, {}, importer, places).catch((e: unknown) => e)
      expect(isRdmaError(err, 'ERR_PROVIDER_UNKNOWN'), name).toBe(true)
      expect((err as RdmaError).details.suggestion).toBe(suggestion)
    }
    const missing = await loadProvider('efa', {}, importer, places).catch((e: unknown) => e)
    expect(isRdmaError(missing, 'ERR_PROVIDER_MISSING')).toBe(true)
    expect((missing as Error).message).toContain('pnpm add @rdma-session/provider-efa')
    expect(imported).toEqual(['@rdma-session/provider-softroc', '@rdma-session/provider-mok', '@rdma-session/provider-efa'])
  })
})
