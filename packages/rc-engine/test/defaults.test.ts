import { describe, expect, it } from 'vitest'
import { ENGINE_LIMITS, QP_DEFAULTS, RNR_RETRY_INFINITE, ackTimeoutMs, rnrDelayMs } from '../src/index.js'

describe('QP defaults', () => {
  it('are the verbs defaults: ~67 ms ACK timeout, 7 retries, RNR forever, 0.64 ms RNR timer, 16 READs/atomics', () => {
    expect(ackTimeoutMs(QP_DEFAULTS.timeout, 0, Infinity)).toBeCloseTo(67.1, 1)
    expect(QP_DEFAULTS.retryCnt).toBe(7)
    expect(QP_DEFAULTS.rnrRetry).toBe(RNR_RETRY_INFINITE)
    expect(rnrDelayMs(QP_DEFAULTS.minRnrTimer, Infinity)).toBe(0.64)
    expect(QP_DEFAULTS.maxRdAtomic).toBe(16)
    expect(QP_DEFAULTS.pathMtu).toBe(1024)
  })

  it('are frozen, so no provider changes them for the others', () => {
    expect(Object.isFrozen(QP_DEFAULTS)).toBe(true)
    expect(Object.isFrozen(ENGINE_LIMITS)).toBe(true)
  })
})
