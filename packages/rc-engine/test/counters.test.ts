import { describe, expect, it } from 'vitest'
import { ENDPOINT_DROP_REASONS, NAK_KINDS, NAK_SYNDROMES, TransportCounters, labeledCounters, nakKind, zeroCounts, zeroNaks } from '../src/index.js'

describe('NAK kinds', () => {
  it('maps AETH syndromes to kinds: ACK is null, any RNR timer is RNR, unknown NAK codes are OTHER', () => {
    expect(nakKind(0x00)).toBeNull()
    expect(nakKind(0x1f)).toBeNull()
    expect(nakKind(0x20)).toBe('RNR')
    expect(nakKind(0x20 | 12)).toBe('RNR')
    expect(nakKind(0x3f)).toBe('RNR')
    for (const [kind, syndrome] of Object.entries(NAK_SYNDROMES)) expect(nakKind(syndrome), kind).toBe(kind)
    expect(nakKind(0x64)).toBe('OTHER')
    expect(Object.keys(zeroNaks()).sort()).toEqual([...NAK_KINDS].sort())
  })
})

describe('counter vocabulary', () => {
  it('drop reasons are camelCase, as core exports metric labels', () => {
    for (const r of ENDPOINT_DROP_REASONS) expect(r).toMatch(/^[a-z]+(?:[A-Z][a-z]+)*$/)
    expect(zeroCounts(ENDPOINT_DROP_REASONS)).toEqual({ unknownQpn: 0, wrongState: 0, wrongSource: 0, decryptFailure: 0, ghostAck: 0, unmatchedDuplicate: 0 })
  })

  it('TransportCounters reports its counters under the SPI names, as a fresh object', () => {
    const c = new TransportCounters()
    c.packetsSent = 3
    c.retransmits = 2
    const first = c.counters()
    expect(first).toEqual({ packetsSent: 3, bytesSent: 0, packetsReceived: 0, bytesReceived: 0, retransmits: 2, timeouts: 0 })
    c.timeouts++
    expect(first.timeouts).toBe(0)
    expect(c.counters().timeouts).toBe(1)
  })
  it('labeledCounters gives NAKs by kind and drops by reason as copies', () => {
    const sent = zeroNaks()
    const drops = zeroCounts(ENDPOINT_DROP_REASONS)
    sent.RNR = 2
    drops.ghostAck = 1
    const l = labeledCounters(sent, zeroNaks(), drops)
    expect(l.naksSent).toEqual({ label: 'kind', values: { ...zeroNaks(), RNR: 2 } })
    expect(l.naksReceived!.label).toBe('kind')
    expect(l.drops).toEqual({ label: 'reason', values: { ...zeroCounts(ENDPOINT_DROP_REASONS), ghostAck: 1 } })
    sent.RNR++
    drops.ghostAck++
    expect(l.naksSent!.values.RNR).toBe(2)
    expect(l.drops!.values.ghostAck).toBe(1)
  })
})
