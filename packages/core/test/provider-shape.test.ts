import { describe, expect, it } from 'vitest'
import { SPECIFICATION_VERSION, assertProvider, createContext, isRdmaError, loadProvider, type RdmaError } from '../src/index.js'
import { SCRIPTED_CAPS, scriptedProvider } from './fakes/scripted-provider.js'

/** A provider object as a package would hand it over, with `patch` applied. */
const shaped = (patch: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: 'fake', specificationVersion: SPECIFICATION_VERSION, capabilities: SCRIPTED_CAPS, openDevice: async () => { throw new Error('unused') }, ...patch,
})

const thrown = (value: unknown): RdmaError => {
  try {
    assertProvider(value)
  } catch (err) {
    if (isRdmaError(err)) return err
    throw err
  }
  throw new Error('assertProvider accepted it')
}

describe('the provider interface version a provider states', () => {
  const [major, minor] = SPECIFICATION_VERSION.split('.').map(Number) as [number, number]

  it('accepts this major version, at any minor', () => {
    expect(() => assertProvider(shaped())).not.toThrow()
    expect(() => assertProvider(shaped({ specificationVersion: `${major}.${minor + 7}` }))).not.toThrow()
    expect(() => assertProvider(shaped({ specificationVersion: `${major}.0` }))).not.toThrow()
  })

  it('refuses another major version with ERR_PROVIDER_SPEC_MISMATCH naming both versions', () => {
    for (const other of [`${major + 1}.0`, `${major - 1}.9`]) {
      const err = thrown(shaped({ specificationVersion: other }))
      expect(err.code).toBe('ERR_PROVIDER_SPEC_MISMATCH')
      expect(err.message).toContain(`provider 'fake' implements provider interface ${other}`)
      expect(err.message).toContain(`drives provider interface ${SPECIFICATION_VERSION}`)
      expect(err.details).toEqual({ provider: 'fake', providerVersion: other, coreVersion: SPECIFICATION_VERSION })
    }
  })

  it('refuses a provider that states no version, or one not shaped major.minor, saying so', () => {
    const missing = thrown(shaped({ specificationVersion: undefined }))
    expect(missing.code).toBe('ERR_PROVIDER_SPEC_MISMATCH')
    expect(missing.message).toContain("provider 'fake' states no specificationVersion")
    expect(missing.details['providerVersion']).toBeNull()
    for (const bad of [1, '1', 'v1.0', '1.0.0', '']) expect(thrown(shaped({ specificationVersion: bad })).code, String(bad)).toBe('ERR_PROVIDER_SPEC_MISMATCH')
  })

  it('is checked when a provider is loaded by name and when createContext is handed one', async () => {
    const old = shaped({ specificationVersion: `${major + 1}.0` })
    await expect(loadProvider('@acme/provider-old', {}, async () => ({ createProvider: () => old }))).rejects.toMatchObject({ code: 'ERR_PROVIDER_SPEC_MISMATCH' })
    await expect(createContext({ provider: old as never })).rejects.toMatchObject({ code: 'ERR_PROVIDER_SPEC_MISMATCH' })
    const ctx = await createContext({ provider: scriptedProvider() })
    await ctx.close()
  })
})

describe('the shape of a provider', () => {
  it('names every field that does not have its type (ERR_PROVIDER_INVALID)', () => {
    const err = thrown(shaped({ name: '', openDevice: 'no', capabilities: { ...SCRIPTED_CAPS, atomics: 'yes', maxQps: -1, maxMtu: 1500 }, package: { name: 'x', version: 1, coreRange: 2 } }))
    expect(err.code).toBe('ERR_PROVIDER_INVALID')
    expect(err.details['problems']).toEqual([
      'name is not a non-empty string',
      'openDevice is not a function',
      'capabilities.atomics is not a boolean',
      'capabilities.maxQps is not a non-negative integer',
      'capabilities.maxMtu is not one of 256, 512, 1024, 2048, 4096',
      'package.version is not a string',
      'package.coreRange is neither a string nor null',
    ])
  })

  it('refuses a capability record with a field missing, and a non-object', () => {
    const { maxSge: _, ...partial } = SCRIPTED_CAPS
    expect(thrown(shaped({ capabilities: partial })).details['problems']).toEqual(['capabilities.maxSge is not a non-negative integer'])
    expect(thrown(shaped({ capabilities: null })).details['problems']).toEqual(['capabilities is not an object'])
    expect(thrown({ name: 1 }).details['problems']).toEqual(['specificationVersion is missing', 'name is not a non-empty string', 'openDevice is not a function', 'capabilities is not an object'])
    expect(thrown(null).code).toBe('ERR_PROVIDER_INVALID')
    expect(thrown('mock').message).toContain('got string')
  })

  it('accepts a package record with a null core range, and none', () => {
    expect(() => assertProvider(shaped({ package: { name: '@acme/p', version: '1.0.0', coreRange: null } }))).not.toThrow()
    expect(() => assertProvider(shaped({ package: undefined }))).not.toThrow()
  })
})
