/** GID text/bytes conversions and the choice of a device's RoCEv2 GID. */
import { describe, expect, it } from 'vitest'
import { addressToGid, gidToAddress, gidToText, selectGid, type NativeGidEntry } from '../src/index.js'
import { gidForRemote } from '../src/gid.js'

const entry = (index: number, address: string, type: NativeGidEntry['type'] = 'roce-v2', port = 1): NativeGidEntry => ({ index, port, gid: addressToGid(address), type, ifindex: 2 })
// The --tap guest's rxe2 table: link-local, IPv4, IPv6 (all RoCE v2).
const rxe2 = [entry(0, 'fe80::5054:ff:fe12:3458'), entry(1, '10.77.0.2'), entry(2, 'fd77::2')]

describe('addresses and GIDs', () => {
  it('IPv4 maps to ::ffff:a.b.c.d and back to a dotted quad', () => {
    const g = addressToGid('10.0.2.15')
    expect([...g]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 2, 15])
    expect(gidToText(g)).toBe('::ffff:10.0.2.15')
    expect(gidToAddress(g)).toBe('10.0.2.15')
    expect(gidToAddress(addressToGid('::ffff:10.0.2.15'))).toBe('10.0.2.15')
  })

  it('IPv6 round-trips in RFC 5952 form', () => {
    for (const a of ['fd77::2', 'fe80::5054:ff:fe12:3458', '::1', '2001:db8::1:0:0:1', '1:2:3:4:5:6:7:8']) expect(gidToAddress(addressToGid(a))).toBe(a)
    expect(gidToText(addressToGid('FD77:0:0:0:0:0:0:2'))).toBe('fd77::2')
  })

  it('rejects what is not an address', () => {
    expect(() => addressToGid('rxe0')).toThrow(/not an IPv4 or IPv6 address/)
  })
})

describe('selectGid', () => {
  it('prefers the IPv4 RoCEv2 GID, then a global IPv6 one', () => {
    expect(selectGid(rxe2, 1)?.index).toBe(1)
    expect(selectGid([rxe2[0]!, rxe2[2]!], 1)?.index).toBe(2)
    expect(selectGid([rxe2[0]!], 1)?.index).toBe(0)
    expect(selectGid([entry(1, '10.0.0.1', 'roce-v1')], 1)).toBeNull()
  })

  it('by index and by address; errors list the table', () => {
    expect(selectGid(rxe2, 1, { gidIndex: 2 })?.index).toBe(2)
    expect(selectGid(rxe2, 1, { address: 'fd77::2' })?.index).toBe(2)
    expect(() => selectGid(rxe2, 1, { gidIndex: 7 })).toThrow(/GID index 7.*\n.*index 1: ::ffff:10.77.0.2/s)
    expect(() => selectGid(rxe2, 1, { address: '10.9.9.9' })).toThrow(/no RoCEv2 GID for address 10.9.9.9/)
    expect(() => selectGid(rxe2, 1, { gidType: 'roce-v1' as 'roce-v2' })).toThrow(/only 'roce-v2'/)
  })

  it('the source GID of a QP follows the family of its remote', () => {
    expect(gidForRemote(rxe2, 1, rxe2[1]!, addressToGid('10.77.0.1'))?.index).toBe(1)
    expect(gidForRemote(rxe2, 1, rxe2[1]!, addressToGid('fd77::1'))?.index).toBe(2)
    expect(gidForRemote([rxe2[1]!], 1, rxe2[1]!, addressToGid('fd77::1'))).toBeNull()
    // Scope follows the remote: a global IPv6 remote never goes out from the link-local GID.
    expect(gidForRemote([rxe2[0]!, rxe2[1]!], 1, rxe2[1]!, addressToGid('fd77::1'))).toBeNull()
    expect(gidForRemote(rxe2, 1, rxe2[1]!, addressToGid('fe80::1'))?.index).toBe(0)
  })
})
