/** `rdma-session pingpong [host]`: ibv_rc_pingpong on softroce, command-line and wire compatible with rdma-core's. */
import { isIP } from 'node:net'
import { parseArgs } from 'node:util'
import { PATH_MTUS, type PathMtu } from '@rdma-session/core'
import { UsageError, type Command } from '../command.js'
import { inRange, parseCInteger } from './c-integer.js'
import { PingpongFailure, runPingpong, type PingpongOptions } from '../pingpong/run-pingpong.js'

const usage = `usage:
  rdma-session pingpong [options]          start a server and wait for connection
  rdma-session pingpong [options] <host>   connect to server at <host>

Speaks ibv_rc_pingpong's TCP exchange and SEND ping-pong on a softroce RC QP, so either
end can be rdma-core's ibv_rc_pingpong (kernel rxe or a RoCE NIC) or this command.

options (as ibv_rc_pingpong's):
  -p, --port=<port>      listen on/connect to port <port> (default 18515)
  -d, --ib-dev=<dev>     names the softroce device (default softroce0)
  -i, --ib-port=<port>   use port <port> of IB device (default 1)
  -s, --size=<size>      size of message to exchange (default 4096)
  -m, --mtu=<size>       path MTU (default 1024)
  -r, --rx-depth=<dep>   number of receives to post at a time (default 500)
  -n, --iters=<iters>    number of exchanges (default 1000)
  -l, --sl=<sl>          service level value
  -e, --events           sleep on CQ events (accepted; softroce always waits for completions)
  -g, --gid-idx=<gid index>  accepted: softroce has one GID, the bound address, and always sends it
  -c, --chk              validate received buffer
softroce:
  --address=<ip>         local IPv4/IPv6 address to bind; the GID is ::ffff:a.b.c.d or the IPv6
                         address (default: the local address of the TCP connection)
  --roce-port=<port>     local UDP port (default 4791)
  --remote-roce-port=<port>  the peer's UDP port (default: --roce-port)
  --stats                after the summary, print the softroce device's counters (packets,
                         retransmits, drops by reason) as one JSON line on stderr

Kernel rxe and RoCE NICs need the socket helper (pnpm --filter @rdma-session/provider-softroce
build:native): IPv4 packets carry IP ID 0 + DF, IPv6 accepts rxe's zero UDP checksums.
`


/** The options of a command line (exported for tests). */
export function parsePingpongArgs(args: readonly string[]): Omit<PingpongOptions, 'out'> & { stats: boolean } {
  let parsed
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        port: { type: 'string', short: 'p' },
        'ib-dev': { type: 'string', short: 'd' },
        'ib-port': { type: 'string', short: 'i' },
        size: { type: 'string', short: 's' },
        mtu: { type: 'string', short: 'm' },
        'rx-depth': { type: 'string', short: 'r' },
        iters: { type: 'string', short: 'n' },
        sl: { type: 'string', short: 'l' },
        events: { type: 'boolean', short: 'e', multiple: true },
        'gid-idx': { type: 'string', short: 'g' },
        chk: { type: 'boolean', short: 'c' },
        address: { type: 'string' },
        'roce-port': { type: 'string' },
        'remote-roce-port': { type: 'string' },
        stats: { type: 'boolean' },
      },
    })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const v = parsed.values
  if (parsed.positionals.length > 1) throw new UsageError(`give at most one server host, got ${parsed.positionals.join(' ')}`)
  const mtu = inRange(v.mtu, '-m/--mtu', 1024, 256, 4096)
  if (!(PATH_MTUS as readonly number[]).includes(mtu)) throw new UsageError(`-m/--mtu must be one of ${PATH_MTUS.join(', ')}, got ${v.mtu}`)
  if (v.address !== undefined && isIP(v.address) === 0) throw new UsageError(`--address must be an IPv4 or IPv6 address, got '${v.address}'`)
  if (v['gid-idx'] !== undefined) parseCInteger(v['gid-idx'], '-g/--gid-idx')
  const rocePort = inRange(v['roce-port'], '--roce-port', 4791, 0, 65535)
  const host = parsed.positionals[0]
  return {
    ...(host === undefined ? {} : { host }),
    tcpPort: inRange(v.port, '-p/--port', 18515, 0, 65535),
    ...(v['ib-dev'] === undefined ? {} : { ibDev: v['ib-dev'] }),
    ibPort: inRange(v['ib-port'], '-i/--ib-port', 1, 1, 255),
    size: inRange(v.size, '-s/--size', 4096, 0, 1 << 30),
    mtu: mtu as PathMtu,
    rxDepth: inRange(v['rx-depth'], '-r/--rx-depth', 500, 1, 16384),
    iters: inRange(v.iters, '-n/--iters', 1000, 0, 0x7fffffff),
    sl: inRange(v.sl, '-l/--sl', 0, 0, 15),
    validate: v.chk === true,
    stats: v.stats === true,
    ...(v.address === undefined ? {} : { address: v.address }),
    rocePort,
    ...(v['remote-roce-port'] === undefined ? {} : { remoteRocePort: inRange(v['remote-roce-port'], '--remote-roce-port', 4791, 1, 65535) }),
  }
}

export const pingpongCommand: Command = {
  name: 'pingpong',
  summary: 'ibv_rc_pingpong on softroce: same options, TCP exchange and SEND ping-pong (talks to rdma-core\'s)',
  usage,
  async run(args, io) {
    const { stats, ...options } = parsePingpongArgs(args)
    try {
      const result = await runPingpong({ ...options, out: io.out })
      if (stats) io.err(`softroce counters: ${JSON.stringify(result.counters ?? null)}\n`)
      return 0
    } catch (err) {
      if (!(err instanceof PingpongFailure)) throw err
      io.err(`${err.message}\n`)
      return 1
    }
  },
}
