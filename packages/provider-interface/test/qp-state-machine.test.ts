import { describe, expect, it } from 'vitest'
import { checkQpTransition, isRdmaError } from '../src/index.js'

const rtr = { state: 'RTR', remote: { address: '127.0.0.1', port: 4791 }, pathMtu: 1024, destQpn: 17, rqPsn: 5 } as const

describe('QP state machine', () => {
  it('accepts the RC path RESET→INIT→RTR→RTS→SQD→RTS→ERR→RESET', () => {
    expect(() => checkQpTransition('RESET', { state: 'INIT', accessFlags: 15 })).not.toThrow()
    expect(() => checkQpTransition('INIT', rtr)).not.toThrow()
    expect(() => checkQpTransition('RTR', { state: 'RTS', sqPsn: 9 })).not.toThrow()
    expect(() => checkQpTransition('RTS', { state: 'SQD' })).not.toThrow()
    expect(() => checkQpTransition('SQD', { state: 'RTS' })).not.toThrow()
    expect(() => checkQpTransition('RTS', { state: 'ERR' })).not.toThrow()
    expect(() => checkQpTransition('ERR', { state: 'RESET' })).not.toThrow()
  })

  it.each([
    ['RESET', 'RTS'],
    ['RESET', 'RTR'],
    ['INIT', 'RTS'],
    ['RTR', 'INIT'],
    ['ERR', 'RTS'],
    ['RTS', 'RTR'],
  ] as const)('rejects %s -> %s with ERR_QP_STATE naming both states', (from, to) => {
    try {
      checkQpTransition(from, { state: to, sqPsn: 1, accessFlags: 1 })
      expect.unreachable()
    } catch (err) {
      expect(isRdmaError(err, 'ERR_QP_STATE')).toBe(true)
      expect((err as Error).message).toContain(`${from} -> ${to}`)
    }
  })

  it('names a missing required attribute', () => {
    const { destQpn: _omit, ...attrs } = rtr
    try {
      checkQpTransition('INIT', attrs)
      expect.unreachable()
    } catch (err) {
      expect(isRdmaError(err, 'ERR_QP_ATTR')).toBe(true)
      expect((err as { details: { attribute: string } }).details.attribute).toBe('destQpn')
    }
  })

  it('names an attribute that does not belong to the transition', () => {
    expect(() => checkQpTransition('RESET', { state: 'INIT', accessFlags: 1, sqPsn: 3 })).toThrow(/'sqPsn': not allowed in RESET -> INIT/)
  })

  it.each([
    ['pathMtu', { ...rtr, pathMtu: 1500 }],
    ['destQpn', { ...rtr, destQpn: 0x1000000 }],
    ['rqPsn', { ...rtr, rqPsn: -1 }],
    ['remote', { ...rtr, remote: { address: '', port: 1 } }],
    ['remote', { ...rtr, remote: { address: 'x', port: 70000 } }],
    ['remote', { ...rtr, remote: { address: 'x', port: 1, extensions: 'selective-repeat' } }],
    ['remote', { ...rtr, remote: { address: 'x', port: 1, extensions: [''] } }],
    ['remote', { ...rtr, remote: { address: 'x', port: 1, extensions: Array.from({ length: 17 }, (_, i) => `x${i}`) } }],
    ['encryption', { ...rtr, encryption: { suite: 'aes-256-gcm', txKey: new Uint8Array(16), rxKey: new Uint8Array(32), epoch: 0 } }],
  ])('rejects an out-of-range %s', (name, attrs) => {
    expect(() => checkQpTransition('INIT', attrs as never)).toThrow(new RegExp(`'${name}'`))
  })

  it('accepts a remote with the transport extensions it announced', () => {
    expect(() => checkQpTransition('INIT', { ...rtr, remote: { address: '127.0.0.1', port: 4791, sourcePort: 5000, extensions: ['selective-repeat'] } })).not.toThrow()
  })

  it('rejects an unknown state', () => {
    expect(() => checkQpTransition('RESET', { state: 'BOGUS' as never })).toThrow(/unknown QP state/)
  })
})
