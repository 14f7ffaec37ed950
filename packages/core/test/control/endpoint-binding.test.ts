/** The endpoint-binding rule on its own: address normalization, the default policy over TCP and Unix sockets, and the ERR_PEER it gives. */
import { describe, expect, it } from 'vitest'
import { checkDeclaredEndpoint, isLocalAddress, isRdmaError, sourceAddressPolicy } from '../../src/index.js'
import { normalizeAddress } from '../../src/control/endpoint-binding.js'

describe('endpoint binding', () => {
  it('normalizes addresses: IPv4-mapped IPv6 (either notation) to the dotted quad, IPv6 to RFC 5952 without a zone', () => {
    expect(normalizeAddress('::ffff:10.77.0.2')).toBe('10.77.0.2')
    expect(normalizeAddress('::FFFF:a4d:2')).toBe('10.77.0.2')
    expect(normalizeAddress('FD77:0000:0000:0000:0000:0000:0000:0002')).toBe('fd77::2')
    expect(normalizeAddress('fe80::1%eth0')).toBe('fe80::1')
    expect(normalizeAddress('127.0.0.1')).toBe('127.0.0.1')
    expect(normalizeAddress(undefined)).toBeNull()
    expect(normalizeAddress('')).toBeNull()
  })

  it('the default policy: the connection source address over TCP, an address of this host over a Unix socket', () => {
    const tcp = { address: '10.77.0.1', peerId: 'psk:default' }
    expect(sourceAddressPolicy({ address: '10.77.0.1', port: 4791 }, tcp)).toBe(true)
    expect(sourceAddressPolicy({ address: '::ffff:10.77.0.1', port: 4791 }, tcp)).toBe(true)
    expect(sourceAddressPolicy({ address: '10.77.0.9', port: 4791 }, tcp)).toBe(false)
    expect(sourceAddressPolicy({ address: 'peer.example', port: 4791 }, tcp)).toBe(false)
    const unix = { address: null, peerId: 'psk:default' }
    expect(sourceAddressPolicy({ address: '127.77.0.5', port: 4791 }, unix)).toBe(true)
    expect(sourceAddressPolicy({ address: '::1', port: 4791 }, unix)).toBe(true)
    expect(sourceAddressPolicy({ address: '203.0.113.5', port: 4791 }, unix)).toBe(false)
    expect(isLocalAddress('203.0.113.5')).toBe(false)
  })

  it('a refusal is ERR_PEER naming the declared endpoint, the source and the fix', () => {
    let err: unknown
    try {
      checkDeclaredEndpoint({ address: '192.0.2.7', port: 4791 }, { address: '10.77.0.1', peerId: 'psk:default' })
    } catch (e) {
      err = e
    }
    expect(isRdmaError(err, 'ERR_PEER')).toBe(true)
    expect((err as Error).message).toMatch(/192\.0\.2\.7:4791.*10\.77\.0\.1.*localAddress.*allowEndpoint/)
    expect((err as { details: object }).details).toEqual({ reason: 'endpoint-unbound', declared: '192.0.2.7:4791', source: '10.77.0.1' })
    expect(() => checkDeclaredEndpoint({ address: '192.0.2.7', port: 4791 }, { address: '10.77.0.1', peerId: 'x' }, () => true)).not.toThrow()
  })
})
