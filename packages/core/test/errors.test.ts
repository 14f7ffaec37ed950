import { describe, expect, it } from 'vitest'
import { ErrorCode, RdmaError, RemoteMismatchError, SessionNotFoundError, isRdmaError, errorFromRecord, recordFromError, registerErrorCodes } from '../src/index.js'

describe('errors', () => {
  it('every code is distinct and starts with ERR_', () => {
    const codes = Object.values(ErrorCode)
    expect(new Set(codes).size).toBe(codes.length)
    for (const c of codes) expect(c).toMatch(/^ERR_[A-Z_]+$/)
  })

  it('isRdmaError recognizes errors from another copy of the package by brand, not class', () => {
    const foreign = new Error('from a duplicate copy') as Error & { code: string }
    foreign.code = 'ERR_SESSION_NOT_FOUND'
    Object.defineProperty(foreign, Symbol.for('@rdma-session/error'), { value: true })
    expect(isRdmaError(foreign, 'ERR_SESSION_NOT_FOUND')).toBe(true)
    expect(isRdmaError(Object.assign(new Error('x'), { code: 'ERR_SESSION_NOT_FOUND' }))).toBe(false)
    expect(isRdmaError(null)).toBe(false)
  })

  it('keeps the code and class name, and round-trips through a wire record', () => {
    const err = new RemoteMismatchError('abc', '1.2.3.4:4791', '5.6.7.8:4791')
    expect(err.name).toBe('RemoteMismatchError')
    expect(err.code).toBe('ERR_REMOTE_MISMATCH')
    expect(err.message).toContain('5.6.7.8:4791')
    const back = errorFromRecord(recordFromError(err))
    expect(isRdmaError(back, 'ERR_REMOTE_MISMATCH')).toBe(true)
    expect(back).toBeInstanceOf(RdmaError)
  })

  it('maps an unknown peer code to ERR_PEER and keeps it in details', () => {
    const back = errorFromRecord({ code: 'ERR_SOMETHING_NEW', message: 'boom' })
    expect(back.code).toBe('ERR_PEER')
    expect(back.details.peerCode).toBe('ERR_SOMETHING_NEW')
    expect(recordFromError(new SessionNotFoundError('x')).code).toBe('ERR_SESSION_NOT_FOUND')
    expect(recordFromError('weird').code).toBe('ERR_PEER')
  })

  it('keeps a peer code that a package registered here (a provider code such as ERR_VERBS), and names no provider code itself', () => {
    expect(Object.values(ErrorCode)).not.toContain('ERR_VERBS')
    expect(errorFromRecord({ code: 'ERR_ACME_FAULT', message: 'x' }).code).toBe('ERR_PEER')
    registerErrorCodes('@acme/provider-fault', { ERR_ACME_FAULT: 'the acme device faulted' })
    const back = errorFromRecord({ code: 'ERR_ACME_FAULT', message: 'x' })
    expect(back.code).toBe('ERR_ACME_FAULT')
    expect(back.message).toBe('peer: x')
  })
})
