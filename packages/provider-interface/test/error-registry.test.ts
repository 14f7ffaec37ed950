import { describe, expect, it } from 'vitest'
import { RdmaError, isRdmaError, registerErrorCodes, registeredErrorCode } from '../src/index.js'

describe('error codes a provider registers', () => {
  it('records the owner and explanation, and an RdmaError carries the code', () => {
    registerErrorCodes('@acme/provider-a', { ERR_ACME_LINK: 'the acme link is down' })
    expect(registeredErrorCode('ERR_ACME_LINK')).toEqual({ code: 'ERR_ACME_LINK', owner: '@acme/provider-a', explanation: 'the acme link is down' })
    expect(registeredErrorCode('ERR_ACME_OTHER')).toBeUndefined()
    const err = new RdmaError('ERR_ACME_LINK', 'down')
    expect(isRdmaError(err, 'ERR_ACME_LINK')).toBe(true)
    expect(err.toJSON()).toMatchObject({ code: 'ERR_ACME_LINK', name: 'RdmaError' })
  })

  it('lets the owner register again, and refuses the code to another owner and codes not shaped ERR_UPPER_CASE', () => {
    registerErrorCodes('@acme/provider-b', { ERR_ACME_B: 'first' })
    registerErrorCodes('@acme/provider-b', { ERR_ACME_B: 'second' })
    expect(registeredErrorCode('ERR_ACME_B')?.explanation).toBe('second')
    expect(() => registerErrorCodes('@other/provider', { ERR_ACME_B: 'mine' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('registered by @acme/provider-b') }))
    for (const bad of ['ACME', 'ERR_acme', 'ERR_', 'ERR_A__B']) {
      expect(() => registerErrorCodes('@acme/provider-c', { [bad]: 'x' }), bad).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    }
    // A refused batch registers nothing.
    expect(() => registerErrorCodes('@acme/provider-c', { ERR_ACME_C: 'ok', bad: 'x' })).toThrow()
    expect(registeredErrorCode('ERR_ACME_C')).toBeUndefined()
  })
})
