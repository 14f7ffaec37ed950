import { describe, expect, it } from 'vitest'
import { ackTimeoutMs, rnrDelayMs, RNR_TIMER_US } from '../src/index.js'

describe('IB timers', () => {
  it('ACK timeout 4.096 us * 2^t within the clamp; 0 is infinite; RNR table', () => {
    expect(ackTimeoutMs(14, 1, 10_000)).toBeCloseTo(67.1, 1)
    expect(ackTimeoutMs(1, 1, 10_000)).toBe(1)
    expect(ackTimeoutMs(31, 1, 10_000)).toBe(10_000)
    expect(ackTimeoutMs(0, 1, 10_000)).toBe(Infinity)
    expect(rnrDelayMs(1, 1000)).toBe(0.01)
    expect(rnrDelayMs(12, 1000)).toBe(0.64)
    expect(rnrDelayMs(0, 1000)).toBe(655.36)
  })
  it('the RNR timer table is IBTA table 45 (0.01 ms to 491.52 ms, code 0 = 655.36 ms), and a 5-bit field picks the entry', () => {
    expect(RNR_TIMER_US).toHaveLength(32)
    expect(RNR_TIMER_US[0]).toBe(655_360)
    expect(RNR_TIMER_US[25]).toBe(61_440)
    expect(RNR_TIMER_US[31]).toBe(491_520)
    for (let c = 2; c < 32; c++) expect(RNR_TIMER_US[c]!, `code ${c}`).toBeGreaterThan(RNR_TIMER_US[c - 1]!)
    expect(rnrDelayMs(31, 1000)).toBe(491.52)
    expect(rnrDelayMs(31, 100), 'capped').toBe(100)
    expect(rnrDelayMs(32 + 12, 1000), 'only the low 5 bits count').toBe(0.64)
  })
})
