import { describe, expect, it } from 'vitest'
import { TokenBucket } from '../src/index.js'

describe('TokenBucket', () => {
  // 10 MB/s = 10 000 bytes per ms; burst 5 ms = 50 000 bytes.
  it('banks at most the burst while idle', () => {
    const b = new TokenBucket(10e6, 0)
    expect(b.tokens).toBe(50_000)
    b.tokens = -4_000
    b.refill(100)
    expect(b.tokens).toBe(50_000)
  })

  it('makes good a late wake-up of a QP waiting with packets ready (up to 50 ms), once', () => {
    const b = new TokenBucket(10e6, 0)
    b.tokens = -4_000
    expect(b.startWaiting()).toBeCloseTo(0.4)
    // The 0.4 ms timer fired at 20 ms: the QP is owed 19.6 ms of its rate, not just the burst.
    b.refill(20)
    expect(b.tokens).toBeCloseTo(196_000)
    // Once it has sent that and goes idle, the burst caps the bucket again.
    b.tokens = 0
    b.refill(40)
    expect(b.tokens).toBe(50_000)
    b.tokens = -1_000
    b.startWaiting()
    b.refill(1_040)
    expect(b.tokens).toBe(500_000)
  })

  it('keeps late-wake credit above the burst until it is spent (a turn cut short loses none), without adding to it', () => {
    const b = new TokenBucket(10e6, 0)
    b.tokens = -1_000
    b.startWaiting()
    b.refill(30) // owed 29.9 ms: 299 000 bytes
    b.tokens -= 100_000 // the turn's time budget ran out after 100 000 bytes
    b.refill(31)
    expect(b.tokens, 'the rest of the credit is still there').toBeCloseTo(199_000)
    b.refill(200)
    expect(b.tokens, 'idle time adds nothing above what was held').toBeCloseTo(199_000)
    b.tokens = 10_000
    b.refill(300)
    expect(b.tokens, 'once spent below the burst, the burst caps it again').toBe(50_000)
  })
})
