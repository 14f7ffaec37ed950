import { describe, expect, it } from 'vitest'
import {
  CREDITS_INVALID,
  NakCode,
  ackSyndrome,
  creditCodeFor,
  creditsFromCode,
  isAck,
  isNak,
  isRnrNak,
  nakSyndrome,
  parseSyndrome,
  rnrNakSyndrome,
  rnrTimerCodeFor,
  rnrTimerMicros,
} from '../../src/wire/aeth.js'
import { WireError } from '../../src/wire/errors.js'

describe('AETH syndromes', () => {
  it('encodes the IBTA bit layout', () => {
    expect(ackSyndrome()).toBe(0x1f)
    expect(ackSyndrome(0)).toBe(0x00)
    expect(rnrNakSyndrome(0)).toBe(0x20)
    expect(rnrNakSyndrome(31)).toBe(0x3f)
    expect(nakSyndrome(NakCode.PSN_SEQUENCE_ERROR)).toBe(0x60)
    expect(nakSyndrome(NakCode.INVALID_REQUEST)).toBe(0x61)
    expect(nakSyndrome(NakCode.REMOTE_ACCESS_ERROR)).toBe(0x62)
    expect(nakSyndrome(NakCode.REMOTE_OPERATIONAL_ERROR)).toBe(0x63)
    expect(nakSyndrome(NakCode.INVALID_RD_REQUEST)).toBe(0x64)
    expect(CREDITS_INVALID).toBe(31)
  })

  it('round-trips every value of every kind', () => {
    for (let v = 0; v < 32; v++) {
      expect(parseSyndrome(ackSyndrome(v))).toEqual({ kind: 'ack', credits: v })
      expect(parseSyndrome(rnrNakSyndrome(v))).toEqual({ kind: 'rnr', timerCode: v })
      expect(parseSyndrome(nakSyndrome(v))).toEqual({ kind: 'nak', nakCode: v })
      expect(parseSyndrome(0x40 | v)).toEqual({ kind: 'reserved', value: v })
      expect(isAck(ackSyndrome(v)) && isRnrNak(rnrNakSyndrome(v)) && isNak(nakSyndrome(v))).toBe(true)
      expect(isAck(nakSyndrome(v)) || isNak(ackSyndrome(v)) || isRnrNak(nakSyndrome(v))).toBe(false)
    }
    expect(parseSyndrome(0x80 | 0x1f)).toEqual({ kind: 'ack', credits: 31 }) // bit 7 reserved
  })

  it('rejects out-of-range codes with WireError', () => {
    for (const f of [ackSyndrome, rnrNakSyndrome, nakSyndrome, rnrTimerMicros, creditsFromCode]) {
      for (const bad of [-1, 32, 1.5, Number.NaN]) expect(() => f(bad)).toThrow(WireError)
    }
  })

  it('RNR timer table (IBTA table 45)', () => {
    const ms = [655.36, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24, 0.32, 0.48, 0.64, 0.96, 1.28, 1.92,
      2.56, 3.84, 5.12, 7.68, 10.24, 15.36, 20.48, 30.72, 40.96, 61.44, 81.92, 122.88, 163.84, 245.76, 327.68, 491.52]
    for (let c = 0; c < 32; c++) expect(rnrTimerMicros(c)).toBe(Math.round(ms[c]! * 1000))
    expect(rnrTimerCodeFor(1)).toBe(1)
    expect(rnrTimerCodeFor(10)).toBe(1)
    expect(rnrTimerCodeFor(11)).toBe(2)
    expect(rnrTimerCodeFor(491520)).toBe(31)
    expect(rnrTimerCodeFor(500000)).toBe(0)
  })

  it('credit count table (IBTA table 44)', () => {
    expect(creditsFromCode(0)).toBe(0)
    expect(creditsFromCode(5)).toBe(6)
    expect(creditsFromCode(30)).toBe(32768)
    expect(creditsFromCode(31)).toBeUndefined()
    expect(creditCodeFor(0)).toBe(0)
    expect(creditCodeFor(7)).toBe(5) // code 5 = 6 WQEs; code 6 = 8 would overstate
    expect(creditCodeFor(8)).toBe(6)
    expect(creditCodeFor(1e6)).toBe(30)
  })
})
