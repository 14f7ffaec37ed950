import { describe, expect, it } from 'vitest'
import { SPECIFICATION_VERSION, specificationMajor } from '../src/index.js'

describe('SPECIFICATION_VERSION', () => {
  it('is major.minor, and specificationMajor reads its major', () => {
    expect(SPECIFICATION_VERSION).toMatch(/^\d+\.\d+$/)
    expect(specificationMajor(SPECIFICATION_VERSION)).toBe(Number(SPECIFICATION_VERSION.split('.')[0]))
    expect(specificationMajor('12.3')).toBe(12)
    for (const bad of [undefined, null, 1, '1', '1.0.0', 'v1.0', ' 1.0', '']) expect(specificationMajor(bad), String(bad)).toBeNull()
  })
})
