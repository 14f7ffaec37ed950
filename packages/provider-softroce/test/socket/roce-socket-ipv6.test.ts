// IPv6: kernel rxe sends UDP checksum 0. Linux drops such a datagram (Udp6InCsumErrors) unless
// the socket has UDP_NO_CHECK6_RX; loopback does enforce this (checked below: the capture shows
// checksum 0 on the wire and the plain socket's counter moves). udp-probe.py sends the way rxe does.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { openRoceSocket, type RoceSocket } from '../../src/socket/roce-socket.js'
import { DISABLE_ENV, resetSockoptAddon } from '../../src/socket/sockopt-addon.js'
import { ensureAddonBuilt, rawCaptureUnavailable, runProbe, sleep, snmp6 } from './helpers.js'
import { environmentSkip } from '../../../../tools/test-env.mjs'

const rawCaptureSkip = environmentSkip('openRoceSocket IPv6 zero-checksum receive', rawCaptureUnavailable)

const open: RoceSocket[] = []
afterEach(() => {
  for (const s of open.splice(0)) s.socket.close()
})

/** Send one zero-checksum datagram to rx and report whether it arrived (within `waitMs`). */
async function zeroChecksumDatagram(rx: RoceSocket, text: string, waitMs: number) {
  const got: string[] = []
  rx.socket.on('message', (m) => got.push(m.toString()))
  const capture = runProbe(['capture6', String(rx.port), '1', '60'])
  await capture.ready
  const before = snmp6('Udp6InCsumErrors')
  await runProbe(['send6-zero-csum', '::1', String(rx.port), text]).done
  const [wire] = await capture.done
  const deadline = Date.now() + waitMs
  while (got.length === 0 && Date.now() < deadline) await sleep(20)
  return { got, wire, csumErrors: snmp6('Udp6InCsumErrors') - before }
}

describe.skipIf(Boolean(rawCaptureSkip))('openRoceSocket IPv6 receive of zero-checksum UDP (loopback)', () => {
  beforeAll(() => {
    ensureAddonBuilt()
  }, 200_000)

  it('native helper: the datagram with UDP checksum 0 is delivered', async () => {
    const rx = await openRoceSocket({ family: 6, address: '::1', port: 0 })
    open.push(rx)
    expect(rx.helper).toBe('native')
    expect(rx.interop).toEqual({ pmtudiscDo: false, noCheck6Rx: true, wireCompatible: true })
    const r = await zeroChecksumDatagram(rx, 'from rxe, no checksum', 2000)
    expect(r.wire).toMatchObject({ dport: rx.port, udpChecksum: 0 })
    expect(r.got).toEqual(['from rxe, no checksum'])
  })

  it('negative control, plain dgram socket (helper off): the kernel drops it as a checksum error', async () => {
    process.env[DISABLE_ENV] = 'off'
    resetSockoptAddon()
    try {
      const rx = await openRoceSocket({ family: 6, address: '::1', port: 0 })
      open.push(rx)
      expect(rx.helper).toBe('none')
      const r = await zeroChecksumDatagram(rx, 'dropped', 500)
      expect(r.wire).toMatchObject({ dport: rx.port, udpChecksum: 0 })
      expect(r.got).toEqual([])
      expect(r.csumErrors).toBeGreaterThanOrEqual(1)
    } finally {
      delete process.env[DISABLE_ENV]
      resetSockoptAddon()
    }
  })

  it('the native socket still receives ordinary checksummed datagrams and can send', async () => {
    const rx = await openRoceSocket({ family: 6, address: '::1', port: 0 })
    const tx = await openRoceSocket({ family: 6, address: '::1', port: 0 })
    open.push(rx, tx)
    const got = new Promise<string>((resolve) => rx.socket.once('message', (m) => resolve(m.toString())))
    tx.socket.send('checksummed', rx.port, '::1')
    expect(await got).toBe('checksummed')
  })
})
