/** `rdma-session perftest <write|read|send|atomic> [bw|lat] [host]`: perftest's ib_*_bw/ib_*_lat on softroce, option and wire compatible. */
import { isIP } from 'node:net'
import { parseArgs } from 'node:util'
import { PATH_MTUS, type PathMtu } from '@rdma-session/core'
import { UsageError, type Command } from '../command.js'
import { runPerftest, type PerftestOptions } from '../perftest/run-perftest.js'
import type { TestKind, Verb } from '../perftest/report.js'
import { inRange } from './c-integer.js'

const usage = `usage:
  rdma-session perftest <write|read|send|atomic> [bw|lat] [options]          start a server and wait for connection
  rdma-session perftest <write|read|send|atomic> [bw|lat] [options] <host>   connect to server at <host>

Speaks perftest's TCP exchange (or with -R its rdma_cm mode) and runs its test on softroce RC QPs, so either end
can be perftest's ib_write_bw, ib_write_lat, ib_read_bw, ib_read_lat, ib_send_bw, ib_send_lat,
ib_atomic_bw or ib_atomic_lat (perftest 5.70 or newer; kernel rxe or a RoCE NIC), or this command.
bw is the default.

options (as perftest's):
  -p, --port=<port>        listen on/connect to port <port> (default 18515)
  -d, --ib-dev=<dev>       names the softroce device (default softroce0)
  -i, --ib-port=<port>     use port <port> of IB device (default 1)
  -s, --size=<size>        size of message to exchange (default 65536 bw, 2 lat; atomic: 8)
  -a, --all                run sizes from 2 till 2^23 (not with atomic)
  -n, --iters=<iters>      number of exchanges (at least 5, default 5000 bw, 1000 lat)
  -D, --duration=<s>       run for <s> seconds instead (write, read and atomic BW); the figures
                           are those of the middle, without -f seconds at each end
  -f, --margin=<s>         the margin of -D (default a quarter of it)
  -q, --qp=<num of qp's>   number of QPs (bw tests; default 1)
  -t, --tx-depth=<dep>     size of tx queue (default 128 bw, 1 lat)
  -r, --rx-depth=<dep>     number of receives to post (send tests; default 512)
  -m, --mtu=<mtu>          path MTU 256-4096 (default 1024; the smaller of both sides is used)
  -x, --gid-index=<index>  accepted: softroce has one GID, the bound address, and always sends it
  -S, --sl=<sl>            SL (default 0)
  -u, --qp-timeout=<t>     QP timeout, 4 usec * 2^t (default 14)
  -A, --atomic_type=<type> FETCH_AND_ADD (default) or CMP_AND_SWAP
  -F, --CPU-freq           accepted (no CPU frequency warning here)
  -R, --rdma_cm            connect the QPs through rdma_cm, on the -p port; the exchange then runs
                           over an rdma_cm connection too (perftest -R; the server needs --address)
      --report_gbits       report BW in Gbit/sec instead of MiB/sec
softroce:
  --address=<ip>           local IPv4/IPv6 address to bind; the GID is ::ffff:a.b.c.d or the IPv6
                           address (default: the local address of the TCP connection; with -R the
                           client's route toward <host>)
  --roce-port=<port>       local UDP port (default 4791)
  --remote-roce-port=<port>  the peer's UDP port (default: --roce-port)
  --exchange-timeout=<s>   how long a setup exchange waits for the peer (default 60)
  --stats                  when the run ends (failed or not), softroce's counters as one JSON line on stderr,
                           with kernelSocketDrops (datagrams the kernel dropped at its UDP socket: receive
                           buffer full); with -R before it "softroce cm: …", the CM's MADs sent, received
                           and dropped by reason

Not supported: -z (exchange over rdma_cm, QPs without), -D for send and latency tests,
-b (bidirectional), -c other than RC.
`

const VERBS: readonly Verb[] = ['write', 'read', 'send', 'atomic']


/** The options of a command line (exported for tests). */
export function parsePerftestArgs(args: readonly string[]): Omit<PerftestOptions, 'out'> & { stats: boolean } {
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
        all: { type: 'boolean', short: 'a' },
        iters: { type: 'string', short: 'n' },
        qp: { type: 'string', short: 'q' },
        'tx-depth': { type: 'string', short: 't' },
        'rx-depth': { type: 'string', short: 'r' },
        mtu: { type: 'string', short: 'm' },
        'gid-index': { type: 'string', short: 'x' },
        sl: { type: 'string', short: 'S' },
        'qp-timeout': { type: 'string', short: 'u' },
        atomic_type: { type: 'string', short: 'A' },
        'CPU-freq': { type: 'boolean', short: 'F' },
        duration: { type: 'string', short: 'D' },
        margin: { type: 'string', short: 'f' },
        report_gbits: { type: 'boolean' },
        address: { type: 'string' },
        'roce-port': { type: 'string' },
        'remote-roce-port': { type: 'string' },
        'exchange-timeout': { type: 'string' },
        stats: { type: 'boolean' },
        // perftest's, refused below with the reason
        rdma_cm: { type: 'boolean', short: 'R' },
        com_rdma_cm: { type: 'boolean', short: 'z' },
        bidirectional: { type: 'boolean', short: 'b' },
        connection: { type: 'string', short: 'c' },
      },
    })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const v = parsed.values
  if (v.com_rdma_cm === true) throw new UsageError('-z/--com_rdma_cm is not supported: run perftest without -z')
  if (v.bidirectional === true) throw new UsageError('-b/--bidirectional is not supported')
  if (v.connection !== undefined && v.connection !== 'RC') throw new UsageError(`-c/--connection: only RC is supported, got '${v.connection}'`)
  const pos = [...parsed.positionals]
  const verb = pos.shift()
  if (verb === undefined || !(VERBS as readonly string[]).includes(verb)) throw new UsageError(`give the test first: ${VERBS.join(', ')}${verb === undefined ? '' : `, not '${verb}'`}`)
  let kind: TestKind = 'bw'
  if (pos[0] === 'bw' || pos[0] === 'lat') kind = pos.shift() as TestKind
  if (pos.length > 1) throw new UsageError(`give at most one server host, got ${pos.join(' ')}`)
  const lat = kind === 'lat'
  let mtu: PathMtu | undefined
  if (v.mtu !== undefined) {
    const m = inRange(v.mtu, '-m/--mtu', 1024, 256, 4096)
    if (!(PATH_MTUS as readonly number[]).includes(m)) throw new UsageError(`-m/--mtu must be one of ${PATH_MTUS.join(', ')}, got ${v.mtu}`)
    mtu = m as PathMtu
  }
  if (v.address !== undefined && isIP(v.address) === 0) throw new UsageError(`--address must be an IPv4 or IPv6 address, got '${v.address}'`)
  const atomicType = v.atomic_type ?? 'FETCH_AND_ADD'
  if (atomicType !== 'FETCH_AND_ADD' && atomicType !== 'CMP_AND_SWAP') throw new UsageError(`-A/--atomic_type must be FETCH_AND_ADD or CMP_AND_SWAP, got '${atomicType}'`)
  if (v.all === true && verb === 'atomic') throw new UsageError('-a/--all does not apply to atomic tests (they always move 8 bytes)')
  const qps = inRange(v.qp, '-q/--qp', 1, 1, 64)
  if (lat && qps !== 1) throw new UsageError('latency tests run one QP (-q 1)')
  if (v.size !== undefined && v.all === true) throw new UsageError('-s and -a exclude each other')
  let duration: { seconds: number; margin: number } | undefined
  if (v.duration !== undefined) {
    if (kind !== 'bw' || verb === 'send') throw new UsageError('-D/--duration is supported for the write, read and atomic BW tests: use -n <iterations>')
    if (v.all === true) throw new UsageError('-D and -a exclude each other')
    const seconds = inRange(v.duration, '-D/--duration', 5, 1, 86400)
    const margin = inRange(v.margin, '-f/--margin', Math.floor(seconds / 4), 0, 86400)
    if (!(seconds > 2 * margin)) throw new UsageError(`-D ${seconds} must be more than twice the margin (-f ${margin})`)
    duration = { seconds, margin }
  } else if (v.margin !== undefined) {
    throw new UsageError('-f/--margin applies to -D runs only')
  }
  const host = pos[0]
  if (v.rdma_cm === true && host === undefined && v.address === undefined) throw new UsageError('-R/--rdma_cm as the server needs --address <ip>: the address rdma_cm clients connect to (softroce binds one)')
  if (v.rdma_cm === true && host !== undefined && isIP(host) === 0) throw new UsageError(`-R/--rdma_cm needs the server's IP address, got '${host}'`)
  return {
    ...(duration === undefined ? {} : { duration }),
    verb: verb as Verb, kind,
    ...(host === undefined ? {} : { host }),
    ...(v.rdma_cm === true ? { rdmaCm: true } : {}),
    tcpPort: inRange(v.port, '-p/--port', 18515, 0, 65535),
    ...(v['ib-dev'] === undefined ? {} : { ibDev: v['ib-dev'] }),
    ibPort: inRange(v['ib-port'], '-i/--ib-port', 1, 1, 255),
    size: verb === 'atomic' ? inRange(v.size, '-s/--size', 8, 8, 8) : inRange(v.size, '-s/--size', lat ? 2 : 65536, 1, 1 << 23),
    allSizes: v.all === true,
    iters: inRange(v.iters, '-n/--iters', lat ? 1000 : 5000, 5, 100_000_000),
    qps,
    txDepth: inRange(v['tx-depth'], '-t/--tx-depth', lat ? 1 : 128, 1, 16384),
    rxDepth: inRange(v['rx-depth'], '-r/--rx-depth', 512, 1, 16384),
    ...(mtu === undefined ? {} : { mtu }),
    gidIndex: inRange(v['gid-index'], '-x/--gid-index', 0, 0, 255),
    sl: inRange(v.sl, '-S/--sl', 0, 0, 15),
    qpTimeout: inRange(v['qp-timeout'], '-u/--qp-timeout', 14, 0, 31),
    gbits: v.report_gbits === true,
    atomicType,
    ...(v.address === undefined ? {} : { address: v.address }),
    rocePort: inRange(v['roce-port'], '--roce-port', 4791, 0, 65535),
    ...(v['remote-roce-port'] === undefined ? {} : { remoteRocePort: inRange(v['remote-roce-port'], '--remote-roce-port', 4791, 1, 65535) }),
    exchangeTimeoutMs: inRange(v['exchange-timeout'], '--exchange-timeout', 60, 1, 86400) * 1000,
    stats: v.stats === true,
  }
}

export const perftestCommand: Command = {
  name: 'perftest',
  summary: 'perftest\'s ib_{write,read,send,atomic}_{bw,lat} on softroce: same options, TCP exchange and result table (talks to perftest\'s)',
  usage,
  async run(args, io) {
    const { stats, ...options } = parsePerftestArgs(args)
    // The CM's counters also when the run fails: what the peer's CM sent is often why.
    const onCmStats = stats ? (cm: Record<string, unknown>): void => io.err(`softroce cm: ${JSON.stringify(cm)}\n`) : undefined
    // softroce's counters also when the run fails: retransmits and drops tell a stall from a loss.
    const onCounters = stats ? (counters: Record<string, unknown> | null): void => io.err(`softroce counters: ${JSON.stringify(counters)}\n`) : undefined
    await runPerftest({ ...options, out: io.out, ...(onCmStats === undefined ? {} : { onCmStats }), ...(onCounters === undefined ? {} : { onCounters }) })
    return 0
  },
}
