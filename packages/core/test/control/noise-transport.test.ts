/** The record layer: Noise transport messages, frames larger than one Noise message, and what must not open. */
import { describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { FrameOpener, FrameSealer, MAX_SEALED_BYTES } from '../../src/control/noise-transport.js'
import { MAX_FRAME_BYTES } from '../../src/control/frames.js'

const pair = () => {
  const key = randomBytes(32)
  return { sealer: new FrameSealer(key), opener: new FrameOpener(key) }
}

describe('Noise transport frames', () => {
  it('frames from empty to MAX_FRAME_BYTES round-trip, in order', () => {
    const { sealer, opener } = pair()
    for (const n of [0, 1, 65519, 65520, 200_000, MAX_FRAME_BYTES]) {
      const plain = randomBytes(n)
      const sealed = sealer.seal(plain)
      expect(sealed.length).toBeLessThanOrEqual(MAX_SEALED_BYTES)
      expect(opener.open(sealed)?.equals(plain)).toBe(true)
    }
  })

  it('a replayed, reordered, flipped or cut frame does not open, and the stream goes on after it', () => {
    const { sealer, opener } = pair()
    const a = sealer.seal(randomBytes(200_000))
    const b = sealer.seal(Buffer.from('b'))
    expect(opener.open(b)).toBeNull()
    const cut = a.subarray(0, 2 * 65535)
    expect(opener.open(cut)).toBeNull()
    const flipped = Buffer.from(a)
    flipped[70_000]! ^= 1
    expect(opener.open(flipped)).toBeNull()
    expect(opener.open(a)).not.toBeNull()
    expect(opener.open(a)).toBeNull()
    expect(opener.open(b)?.toString()).toBe('b')
  })

  it('a lost frame (of several Noise messages) shows as a gap: the next frame opens only after it', () => {
    const { sealer, opener } = pair()
    sealer.seal(randomBytes(300_000))
    const next = sealer.seal(Buffer.from('next'))
    expect(opener.open(next)).toBeNull()
    expect(opener.opensAfterGap(next)).toBe(true)
    expect(opener.opensAfterGap(randomBytes(40))).toBe(false)
  })
})
