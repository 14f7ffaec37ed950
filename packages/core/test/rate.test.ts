/** The one rate parser: every accepted unit spelling against its bytes per second, and the spellings it refuses. */
import { describe, expect, it } from 'vitest'
import { Autoscaler, ErrorCode, MAX_RATE_BYTES_PER_SECOND, normalizeQos, parseRate, RATE_UNITS, type QueuePair, type Session } from '../src/index.js'
import { offerOf } from '../src/session/qp-connector.js'

const BIT = 1 / 8

/** Each accepted unit, written out by hand (not derived from the parser's table), and 1 of it in bytes per second. */
const ACCEPTED: readonly (readonly [unit: string, bytesPerSecond: number])[] = [
  ['bit/s', BIT], ['bps', BIT], ['b/s', BIT],
  ['kbit/s', 1e3 * BIT], ['kbps', 1e3 * BIT], ['kb/s', 1e3 * BIT],
  ['Kbit/s', 1e3 * BIT], ['Kbps', 1e3 * BIT], ['Kb/s', 1e3 * BIT],
  ['Mbit/s', 1e6 * BIT], ['Mbps', 1e6 * BIT], ['Mb/s', 1e6 * BIT],
  ['Gbit/s', 1e9 * BIT], ['Gbps', 1e9 * BIT], ['Gb/s', 1e9 * BIT],
  ['B/s', 1], ['Bps', 1],
  ['kB/s', 1e3], ['kBps', 1e3], ['KB/s', 1e3], ['KBps', 1e3],
  ['MB/s', 1e6], ['MBps', 1e6],
  ['GB/s', 1e9], ['GBps', 1e9],
  ['KiB/s', 1024], ['MiB/s', 1024 ** 2], ['GiB/s', 1024 ** 3],
]

/** Rates as the docs and README write them. */
const EXAMPLES: readonly (readonly [rate: string, bytesPerSecond: number])[] = [
  ['2Gbps', 250_000_000],
  ['500Mbps', 62_500_000],
  ['500 Mbps', 62_500_000],
  ['100Mb/s', 12_500_000],
  ['80Mbit/s', 10_000_000],
  ['80Mb/s', 10_000_000],
  ['800b/s', 100],
  ['8Mbps', 1_000_000],
  ['10MB/s', 10_000_000],
  ['10MBps', 10_000_000],
  ['1.5GB/s', 1_500_000_000],
  ['64MiB/s', 64 * 2 ** 20],
  [' 2.5 Gbit/s ', 312_500_000],
  ['.5KiB/s', 512],
]

/** Refused: wrong case (ambiguous between bits and bytes, or a milli prefix), unknown units, no unit, bad numbers. */
const AMBIGUOUS = ['100mbps', '100mb/s', '100MBPS', '1gbps', '1GBPS', '10mB/s', '1kBPS']
const MISCASED = ['10Mbit/S', '10Mib/s', '10kib/s', '10MBit/s', '1GIB/s']
const UNKNOWN = ['10MiBps', '10Mbits/s', '10Tbps', '10MB', '10Mb', '10M', '10 megabits', '10B', '10/s', '10bit']
const MALFORMED = ['', 'fast', 'Mbps', '1e9B/s', '-5MB/s', '10 M b/s', '1,000Mbps', '0x10MB/s', 'NaN MB/s', 'Infinity B/s']

function codeOf(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return (err as { code?: unknown }).code
  }
  return 'no error'
}

describe('parseRate', () => {
  it.each(ACCEPTED)('1 %s = %d bytes/s', (unit, bytesPerSecond) => {
    expect(parseRate(`1${unit}`)).toBeCloseTo(bytesPerSecond, 9)
    expect(parseRate(`250 ${unit}`)).toBeCloseTo(250 * bytesPerSecond, 6)
  })

  it('accepts exactly the units of the table above', () => {
    expect([...RATE_UNITS.keys()].sort()).toEqual(ACCEPTED.map(([u]) => u).sort())
  })

  it.each(EXAMPLES)('%s = %d bytes/s', (rate, bytesPerSecond) => {
    expect(parseRate(rate)).toBe(bytesPerSecond)
  })

  it('takes a number as bytes per second', () => {
    expect(parseRate(1234)).toBe(1234)
    expect(parseRate(0)).toBe(0)
    expect(parseRate(MAX_RATE_BYTES_PER_SECOND)).toBe(MAX_RATE_BYTES_PER_SECOND)
  })

  it.each(AMBIGUOUS)('refuses %j as ambiguous, naming the spellings it may mean', (rate) => {
    expect(() => parseRate(rate)).toThrow(/units are case-sensitive and '[^']+' is ambiguous; write '[^']+' \((bits|bytes)\) or '/)
  })

  it.each(MISCASED)('refuses %j, naming the spelling it may mean', (rate) => {
    expect(() => parseRate(rate)).toThrow(/units are case-sensitive and '[^']+' is not one of them; write '[^']+' \((bits|bytes)\)\. /)
  })

  it.each([...AMBIGUOUS, ...MISCASED, ...UNKNOWN, ...MALFORMED])('refuses %j with ERR_INVALID_ARGUMENT listing every accepted unit', (rate) => {
    let error: { code?: unknown; message: string; details?: { accepted?: unknown } } | undefined
    try {
      parseRate(rate)
    } catch (err) {
      error = err as typeof error
    }
    expect(error?.code).toBe(ErrorCode.INVALID_ARGUMENT)
    expect(error?.message).toMatch(/^rate: cannot read rate '.*': /)
    for (const [unit] of ACCEPTED) expect(error?.message).toContain(unit)
    expect(error?.details?.accepted).toEqual([...RATE_UNITS.keys()])
  })

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY, MAX_RATE_BYTES_PER_SECOND * 1.01, '9000000GB/s', null, {}, true])('refuses %j', (rate) => {
    expect(codeOf(() => parseRate(rate as number))).toBe(ErrorCode.INVALID_ARGUMENT)
  })

  it('names what it was reading', () => {
    expect(() => parseRate('10mbps', 'qos.rateLimit')).toThrow(/^qos\.rateLimit: cannot read rate '10mbps': units are case-sensitive and 'mbps' is ambiguous; write 'Mbps' \(bits\) or 'MBps' \(bytes\)\. /)
  })
})

describe('rates where the SDK reads them', () => {
  it('QoS rate limits', () => {
    expect(normalizeQos({ rateLimit: '80Mb/s' }).rateLimitBps).toBe(10_000_000)
    expect(normalizeQos({ rateLimit: '80MB/s' }).rateLimitBps).toBe(80_000_000)
    expect(normalizeQos({ rateLimit: 4096 }).rateLimitBps).toBe(4096)
    expect(() => normalizeQos({ rateLimit: '80mb/s' })).toThrow(/^qos\.rateLimit: cannot read rate '80mb\/s'/)
  })

  it('autoscale thresholds: below { rate } or { bytesPerSecond }, positive', () => {
    const session = { stats: () => ({ session: { bytesSent: 0, bytesReceived: 0 } }) } as unknown as Session
    const threshold = (below: unknown): number => {
      const scaler = new Autoscaler(session, { maxQps: 2, below: below as { rate: string }, spec: {} }, () => {})
      scaler.stop()
      return scaler.belowBytesPerSecond
    }
    expect(threshold({ rate: '8Gbps' })).toBe(1e9)
    expect(threshold({ rate: '8GB/s' })).toBe(8e9)
    expect(threshold({ rate: 5e8 })).toBe(5e8)
    expect(threshold({ bytesPerSecond: 1e9 })).toBe(1e9)
    expect(() => threshold({ rate: '8gbps' })).toThrow(/^autoscale below\.rate: cannot read rate '8gbps': units are case-sensitive and 'gbps' is ambiguous/)
    expect(() => threshold({ bytesPerSecond: '8Gbps' })).toThrow(/below\.bytesPerSecond must be a number; write a rate with a unit as below: \{ rate: '8Gbps' \}/)
    expect(() => threshold({ rate: '0Mbps' })).toThrow(/must be a positive rate/)
    expect(() => threshold({ bytesPerSecond: -1 })).toThrow(/cannot read rate -1/)
    expect(() => threshold({ rate: '1Gbps', bytesPerSecond: 1 })).toThrow(/not both/)
    expect(() => threshold(undefined)).toThrow(/autoscale needs below/)
    for (const below of [{ rate: 'x' }, { bytesPerSecond: 0 }, {}]) expect(codeOf(() => threshold(below))).toBe(ErrorCode.INVALID_ARGUMENT)
  })

  it('QP offers tell the peer the limit in bytes per second as this side read it', () => {
    const qp = (rateLimitBps: number) => ({ qos: { rateLimitBps }, endpoint: () => ({ qpn: 7, psn: 9 }) }) as unknown as QueuePair
    expect(offerOf(qp(12_500_000), { qos: { class: 'bulk', rateLimit: '100Mb/s' }, caps: { maxSendWr: 4 } })).toEqual({ spec: { qos: { class: 'bulk', rateLimit: 12_500_000 }, caps: { maxSendWr: 4 } }, qpn: 7, psn: 9 })
    expect(offerOf(qp(0), { qos: { class: 'latency' } })).toEqual({ spec: { qos: { class: 'latency' } }, qpn: 7, psn: 9 })
    expect(offerOf(qp(0), undefined)).toEqual({ spec: {}, qpn: 7, psn: 9 })
  })
})
