/** The endpoint record on the control plane: transport extensions (DeviceInfo.extensions) are carried, bounded and named safely. */
import * as v from 'valibot'
import { describe, expect, it } from 'vitest'
import { endpointSchema, MAX_EXTENSIONS } from '../../src/control/record-schema.js'

describe('endpoint record', () => {
  it('carries extensions, and stays valid without them', () => {
    expect(v.parse(endpointSchema, { address: '10.0.0.1', port: 4791, sourcePort: 4791, extensions: ['selective-repeat'] })).toEqual({ address: '10.0.0.1', port: 4791, sourcePort: 4791, extensions: ['selective-repeat'] })
    expect(v.parse(endpointSchema, { address: '10.0.0.1', port: 4791 })).toEqual({ address: '10.0.0.1', port: 4791 })
  })

  it.each([
    ['not a list', 'selective-repeat'],
    ['an empty name', ['']],
    ['upper case', ['Selective-Repeat']],
    ['a name over 32 characters', ['x'.repeat(33)]],
    ['a reserved key', ['__proto__']],
    ['too many', Array.from({ length: MAX_EXTENSIONS + 1 }, (_, i) => `x${i}`)],
  ])('refuses %s', (_why, extensions) => {
    expect(v.safeParse(endpointSchema, { address: '10.0.0.1', port: 4791, extensions }).success).toBe(false)
  })
})
