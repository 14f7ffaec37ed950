// IPv4: with the native helper the kernel writes IP ID 0 + DF on every datagram (what the RoCEv2
// ICRC assumes); a plain dgram socket gets kernel-chosen IDs. Checked on loopback with a raw
// AF_INET capture (udp-probe.py), which sees the IP header as the kernel wrote it.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { openRoceSocket, type RoceSocket } from '../../src/socket/roce-socket.js'
import { DISABLE_ENV, resetSockoptAddon } from '../../src/socket/sockopt-addon.js'
import { ensureAddonBuilt, rawCaptureUnavailable, runProbe } from './helpers.js'
import { environmentSkip } from '../../../../tools/test-env.mjs'

const rawCaptureSkip = environmentSkip('openRoceSocket IPv4 raw capture', rawCaptureUnavailable)

const open: RoceSocket[] = []
afterEach(() => {
  for (const s of open.splice(0)) s.socket.close()
})

/** Send `count` datagrams from `from` to a fresh receiver on 127.0.0.1 and capture their IP headers. */
async function sendAndCapture(from: RoceSocket, count: number) {
  const rx = await openRoceSocket({ family: 4, address: '127.0.0.1', port: 0 })
  open.push(rx)
  const got: Buffer[] = []
  rx.socket.on('message', (m) => got.push(m))
  const probe = runProbe(['capture4', String(rx.port), String(count), '60'])
  await probe.ready
  for (let i = 0; i < count; i++) from.socket.send(Buffer.from(`roce ${i}`), rx.port, '127.0.0.1')
  const records = await probe.done
  await expect.poll(() => got.length).toBe(count)
  return records
}

describe.skipIf(Boolean(rawCaptureSkip))('openRoceSocket IPv4 on the wire (raw capture on loopback)', () => {
  beforeAll(() => {
    ensureAddonBuilt()
  }, 200_000)

  it('native helper: IP ID 0 and DF on every datagram', async () => {
    const tx = await openRoceSocket({ family: 4, address: '127.0.0.1', port: 0 })
    open.push(tx)
    expect(tx.helper).toBe('native')
    expect(tx.interop).toEqual({ pmtudiscDo: true, noCheck6Rx: false, wireCompatible: true })
    expect(tx.reason).toBeUndefined()
    const records = await sendAndCapture(tx, 8)
    expect(records).toHaveLength(8)
    for (const r of records) expect(r).toMatchObject({ id: 0, df: true, mf: false, src: '127.0.0.1', sport: tx.port })
  })

  it('negative control, plain dgram socket (helper off): DF, but non-zero IP IDs', async () => {
    process.env[DISABLE_ENV] = 'off'
    resetSockoptAddon()
    try {
      const tx = await openRoceSocket({ family: 4, address: '127.0.0.1', port: 0 })
      open.push(tx)
      expect(tx.helper).toBe('none')
      const records = await sendAndCapture(tx, 8)
      expect(records).toHaveLength(8)
      expect(records.every((r) => r.df)).toBe(true)
      expect(records.filter((r) => r.id !== 0).length).toBeGreaterThan(0)
    } finally {
      delete process.env[DISABLE_ENV]
      resetSockoptAddon()
    }
  })
})
