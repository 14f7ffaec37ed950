/**
 * `rdma-session pingpong`: rc_pingpong's exchange message byte for byte, its GID text, the
 * command line, and a full ping-pong between two softroce stacks on loopback (both roles, sizes
 * below and above the MTU, -c). The kernel-rxe proof against the real ibv_rc_pingpong is
 * pingpong-rxe.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { UsageError } from '../src/command.js'
import { freeRocePort, freeTcpPort } from './ports.js'
import { parseCInteger, parsePingpongArgs, pingpongCommand } from '../src/commands/pingpong.js'
import { addressLine, runPingpong, summaryLines, type PingpongOptions, type PingpongResult } from '../src/pingpong/run-pingpong.js'
import { MESSAGE_BYTES, addressToGid, decodeDest, encodeDest, formatGid, gidToAddress } from '../src/pingpong/wire-exchange.js'

describe('rc_pingpong exchange message', () => {
  it('is sprintf("%04x:%06x:%06x:%s") of LID, QPN, PSN and the GID bytes in order, NUL-padded to 52 bytes', () => {
    const gid = addressToGid('10.77.0.2')
    const msg = encodeDest({ lid: 0, qpn: 0x11, psn: 0xc39105, gid })
    expect(msg.length).toBe(MESSAGE_BYTES)
    expect(msg.toString('latin1')).toBe('0000:000011:c39105:00000000000000000000ffff0a4d0002\0')
    expect(decodeDest(msg)).toEqual({ lid: 0, qpn: 0x11, psn: 0xc39105, gid: Buffer.from(gid) })
    // what rc_pingpong's sscanf("%x:%x:%x:%s") also accepts: upper-case hex
    expect(decodeDest(Buffer.from('0001:ABCDEF:000001:FD770000000000000000000000000002\0')).gid).toEqual(addressToGid('fd77::2'))
    expect(() => decodeDest(Buffer.from('0000:000011:c39105:00ff\0'))).toThrow(/not an rc_pingpong address message/)
  })

  it('formats GIDs as glibc inet_ntop does and maps them to IP addresses', () => {
    expect(formatGid(addressToGid('10.77.0.2'))).toBe('::ffff:10.77.0.2')
    expect(formatGid(addressToGid('fd77::2'))).toBe('fd77::2')
    expect(formatGid(addressToGid('fe80::5054:ff:fe12:3458'))).toBe('fe80::5054:ff:fe12:3458')
    expect(formatGid(new Uint8Array(16))).toBe('::')
    expect(formatGid(addressToGid('1:0:0:2::'))).toBe('1:0:0:2::')
    expect(formatGid(addressToGid('1::2:0:0:3'))).toBe('1::2:0:0:3')
    expect(gidToAddress(addressToGid('10.77.0.2'))).toEqual({ family: 4, address: '10.77.0.2' })
    expect(gidToAddress(addressToGid('fd77::1'))).toEqual({ family: 6, address: 'fd77::1' })
    expect(addressLine('local address: ', { lid: 0, qpn: 0x1234, psn: 0xabcdef, gid: addressToGid('10.0.0.1') }))
      .toBe('  local address:  LID 0x0000, QPN 0x001234, PSN 0xabcdef, GID ::ffff:10.0.0.1\n')
  })

  it('prints the summary lines as rc_pingpong does', () => {
    expect(summaryLines(4096, 1000, 1_500_000)).toBe('8192000 bytes in 1.50 seconds = 43.69 Mbit/sec\n1000 iters in 1.50 seconds = 1500.00 usec/iter\n')
  })
})

describe('command line', () => {
  it('takes rc_pingpong\'s options, short, long and attached, with C number syntax', () => {
    const o = parsePingpongArgs(['-p', '18600', '-d', 'rxe2', '-i1', '-s', '0x40', '--mtu=2048', '-r', '16', '-n', '010', '-l', '3', '-e', '-g', '1', '-c', '10.77.0.2', '--address', '10.77.0.1', '--roce-port', '4792'])
    expect(o).toMatchObject({ host: '10.77.0.2', tcpPort: 18600, ibDev: 'rxe2', ibPort: 1, size: 64, mtu: 2048, rxDepth: 16, iters: 8, sl: 3, validate: true, address: '10.77.0.1', rocePort: 4792 })
    expect(parsePingpongArgs([])).toMatchObject({ tcpPort: 18515, ibPort: 1, size: 4096, mtu: 1024, rxDepth: 500, iters: 1000, sl: 0, validate: false, rocePort: 4791 })
    expect(parsePingpongArgs([]).host).toBeUndefined()
    expect(parseCInteger('0x1f', '-s')).toBe(31)
    for (const bad of [['-m', '1000'], ['-p', '70000'], ['-i', '0'], ['-n', 'ten'], ['a', 'b'], ['--address', 'host'], ['-x']]) {
      expect(() => parsePingpongArgs(bad), bad.join(' ')).toThrow(UsageError)
    }
  })
})

async function pair(common: Partial<PingpongOptions>): Promise<{ server: PingpongResult; client: PingpongResult; serverOut: string; clientOut: string }> {
  const roce = await freeRocePort()
  const tcp = await freeTcpPort()
  let serverOut = ''
  let clientOut = ''
  let listening!: () => void
  const ready = new Promise<void>((r) => (listening = r))
  const base = { tcpPort: tcp, ibPort: 1, size: 4096, mtu: 1024, rxDepth: 500, iters: 100, sl: 0, validate: false, rocePort: roce, ...common } as const
  const server = runPingpong({ ...base, address: '127.0.0.1', out: (t) => (serverOut += t), onListening: () => listening() })
  await ready
  const client = runPingpong({ ...base, host: '127.0.0.1', address: '127.0.0.2', out: (t) => (clientOut += t) })
  const [s, c] = await Promise.all([server, client])
  return { server: s, client: c, serverOut, clientOut }
}

describe('softroce <-> softroce over loopback', () => {
  for (const size of [64, 4096]) {
    it(`${size} bytes, MTU 1024, 200 iterations, -c: both sides report the same exchange`, async () => {
      const r = await pair({ size, iters: 200, validate: true, rxDepth: 50 })
      for (const out of [r.serverOut, r.clientOut]) {
        expect(out).toMatch(/^ {2}local address: {2}LID 0x0000, QPN 0x[0-9a-f]{6}, PSN 0x[0-9a-f]{6}, GID ::ffff:127\.0\.0\.[12]\n/)
        expect(out).toMatch(new RegExp(`^${size * 200 * 2} bytes in \\d+\\.\\d\\d seconds = \\d+\\.\\d\\d Mbit/sec$`, 'm'))
        expect(out).toMatch(/^200 iters in \d+\.\d\d seconds = \d+\.\d\d usec\/iter$/m)
        expect(out).not.toMatch(/invalid data/)
      }
      expect(r.client.remote.qpn).toBe(r.server.local.qpn)
      expect(r.server.remote.psn).toBe(r.client.local.psn)
      expect(r.server.invalidPages).toEqual([])
    })
  }

  it('the command exits 1 with rc_pingpong\'s message when the peer never answers', async () => {
    const tcp = await freeTcpPort()
    let err = ''
    const code = await pingpongCommand.run(['-p', String(tcp), '127.0.0.1'], { out: () => {}, err: (t) => (err += t), errIsTty: false, env: {}, cwd: '.' }).catch((e: Error) => e)
    expect(String((code as Error).message)).toMatch(new RegExp(`Couldn't connect to 127.0.0.1:${tcp}`))
    expect(err).toBe('')
  })
})
