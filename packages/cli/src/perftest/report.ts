/**
 * perftest's printed output (perftest_parameters.c, perftest_communication.c): the test banner,
 * the local/remote address lines, the result tables of BW and latency tests, and the arithmetic
 * behind their figures (print_report_bw, print_report_lat), from timestamps in microseconds.
 */
import type { BwReport, PerftestDest } from './wire.js'

export type Verb = 'send' | 'write' | 'read' | 'atomic'
export type TestKind = 'bw' | 'lat'

export const RESULT_LINE = '---------------------------------------------------------------------------------------\n'
const RESULT_FMT = ' #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]\n'
const RESULT_FMT_G = ' #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]\n'
const RESULT_FMT_LAT = ' #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec] \n'
const TEST_NAMES: Record<Verb, string> = { send: 'Send', write: 'RDMA_Write', read: 'RDMA_Read', atomic: 'Atomic' }
/** enum VerbType: which extra fields ctx_print_pingpong_data prints. */
const VERB_NUMBER: Record<Verb, number> = { send: 0, write: 1, read: 2, atomic: 3 }

/** printf("%#0Nx"): 0 is plain zeros, anything else 0x-prefixed, both padded to N. */
export function altHex(n: number, width: number): string {
  return n === 0 ? '0'.padStart(width, '0') : `0x${n.toString(16).padStart(width - 2, '0')}`
}

/** printf("%-W.Pf") (glibc's inf, -inf and -nan for what is not finite). */
const leftF = (x: number, width: number, precision: number): string =>
  (Number.isNaN(x) ? '-nan' : x === Infinity ? 'inf' : x === -Infinity ? '-inf' : x.toFixed(precision)).padEnd(width)

export interface BannerInfo {
  readonly verb: Verb
  readonly kind: TestKind
  readonly device: string
  readonly qps: number
  readonly txDepth: number
  readonly rxDepth?: number
  readonly mtu: number
  readonly gidIndex: number
  readonly outReads?: number
  readonly atomicType?: 'FETCH_AND_ADD' | 'CMP_AND_SWAP'
  /** -R: the QPs and the exchange are rdma_cm's (the server also says it waits for the client's QP). */
  readonly rdmaCm?: 'client' | 'server'
}

/** ctx_print_test_info, for an RC test on a RoCE port. */
export function banner(b: BannerInfo): string {
  const kind = b.kind === 'bw' ? 'BW ' : 'Latency '
  const atomic = b.verb === 'atomic' ? `${b.atomicType ?? 'FETCH_AND_ADD'} ` : ''
  return [
    RESULT_LINE,
    `                    ${TEST_NAMES[b.verb]} ${atomic}${kind}Test\n`,
    ` Dual-port       : OFF\t\tDevice         : ${b.device}\n`,
    ` Number of qps   : ${b.qps}\t\tTransport type : IB\n`,
    ' Connection type : RC\t\tUsing SRQ      : OFF\n',
    ' ibv_wr* API     : OFF\n',
    ...(b.verb !== 'send' || b.kind === 'bw' ? [` TX depth        : ${b.txDepth}\n`] : []),
    ...(b.rxDepth === undefined ? [] : [` RX depth        : ${b.rxDepth}\n`]),
    ...(b.kind === 'bw' ? [' CQ Moderation   : 1\n'] : []),
    ` Mtu             : ${b.mtu}[B]\n`,
    ' Link type       : Ethernet\n',
    ` GID index       : ${b.gidIndex}\n`,
    ...(b.verb === 'read' || b.verb === 'atomic' ? [` Outstand reads  : ${b.outReads ?? 1}\n`] : []),
    ` rdma_cm QPs\t : ${b.rdmaCm === undefined ? 'OFF' : 'ON'}\n`,
    b.rdmaCm === undefined ? ' Data ex. method : Ethernet\n' : ' Data ex. method : rdma_cm\n',
    ...(b.rdmaCm === 'server' ? [RESULT_LINE, ' Waiting for client rdma_cm QP to connect\n Please run the same command with the IB/RoCE interface IP\n'] : []),
    RESULT_LINE,
  ].join('')
}

/** ctx_print_pingpong_data: " local address: LID 0000 QPN 0x0011 PSN 0x8ac5a9 …" and the GID line. */
export function addressLines(side: 'local' | 'remote', d: PerftestDest, verb: Verb): string {
  let line = ` ${side} address: LID ${altHex(d.lid, 4)} QPN ${altHex(d.qpn, 6)} PSN ${altHex(d.psn, 6)}`
  const v = VERB_NUMBER[verb]
  if (v === 2) line += ` OUT ${altHex(d.outReads, 4)}`
  if (v === 1 || v === 2) line += ` RKey ${altHex(d.rkey >>> 0, 8)} VAddr ${altHex(d.vaddr, 16)}`
  return `${line}\n GID: ${[...d.gid].map((b) => String(b).padStart(2, '0')).join(':')}\n`
}

export function bwHeader(gbits: boolean): string {
  return RESULT_LINE + (gbits ? RESULT_FMT_G : RESULT_FMT)
}

/** REPORT_FMT (REPORT_FMT_EXT when a Gb/s figure is below 0.1). */
export function bwLine(r: BwReport, gbits: boolean): string {
  const ext = gbits && r.bwAvg < 0.1
  if (ext) return ` ${String(r.size).padEnd(7)}    ${r.iters}           ${leftF(r.bwPeak, 7, 6)}            ${leftF(r.bwAvg, 7, 6)}            ${leftF(r.msgRate, 7, 6)}\n`
  return ` ${String(r.size).padEnd(7)}    ${String(r.iters).padEnd(10)}       ${leftF(r.bwPeak, 7, 2)}            ${leftF(r.bwAvg, 7, 2)}\t\t   ${leftF(r.msgRate, 7, 6)}\n`
}

/**
 * print_report_bw: the average over the whole run (first post to last completion) and the
 * peak, the best rate of any run of consecutive WRs from a post to a later completion.
 * `posted`/`completed` are µs timestamps per WR (completed[i] is WR i's completion).
 */
export function bwFigures(size: number, posted: readonly number[], completed: readonly number[], gbits: boolean, peakWindow = 100): BwReport {
  const n = completed.length
  const factor = gbits ? 125_000_000 : 0x100000
  const totalUs = Math.max(completed[n - 1]! - posted[0]!, 1e-3)
  let best = totalUs / n
  // perftest: for every start i, every cq_mod-th completion j ≥ i; a coarser grid keeps it O(n²/peakWindow).
  for (let i = 0; i < n; i += peakWindow) {
    for (let j = Math.min(n - 1, i + peakWindow - 1); j < n; j += peakWindow) {
      const per = (completed[j]! - posted[i]!) / (j - i + 1)
      if (per > 0 && per < best) best = per
    }
  }
  return {
    size, iters: n,
    bwAvg: (size * n * 1e6) / (totalUs * factor),
    bwPeak: (size * 1e6) / (best * factor),
    msgRate: n / totalUs,
  }
}

/**
 * A BW report without a peak (perftest's noPeak: a SEND receiver, run_iter_bw_server, from its
 * first to its last receive; a -D run, over its sample window): peak 0, as perftest prints it.
 */
export function bwWindowFigures(size: number, iters: number, us: number, gbits: boolean): BwReport {
  const factor = gbits ? 125_000_000 : 0x100000
  const t = Math.max(us, 1e-3)
  return { size, iters, bwAvg: (size * iters * 1e6) / (t * factor), bwPeak: 0, msgRate: iters / t }
}

export function latHeader(): string {
  return RESULT_LINE + RESULT_FMT_LAT
}

const RESULT_FMT_LAT_DUR = ' #bytes        #iterations       t_avg[usec]    tps average\n'

/** The header of a latency test with -D. */
export function latDurationHeader(): string {
  return RESULT_LINE + RESULT_FMT_LAT_DUR
}

/** print_report_lat_duration's figures: the sample window over the round trips in it (halved for write and send), and transactions per second. */
export interface LatDurationFigures {
  readonly size: number
  readonly iters: number
  readonly avg: number
  readonly tps: number
}

export function latDurationFigures(size: number, iters: number, windowUs: number, rttFactor: 1 | 2): LatDurationFigures {
  return { size, iters, avg: windowUs / rttFactor / Math.max(iters, 1), tps: iters / (windowUs / 1e6) }
}

/** REPORT_FMT_LAT_DUR and REPORT_EXT. */
export function latDurationLine(f: LatDurationFigures): string {
  return ` ${String(f.size).padEnd(7)}       ${f.iters}            ${leftF(f.avg, 7, 2)}        ${leftF(f.tps, 7, 2)}\n`
}

export interface LatFigures {
  readonly size: number
  readonly iters: number
  readonly min: number
  readonly max: number
  readonly typical: number
  readonly avg: number
  readonly stdev: number
  readonly p99: number
  readonly p999: number
}

/**
 * print_report_lat: the gaps between consecutive posts, divided by 2 for ping-pong tests (write,
 * send) and by 1 for read/atomic; sorted, the two largest dropped; the median as typical.
 */
export function latFigures(size: number, posted: readonly number[], rttFactor: 1 | 2): LatFigures {
  const deltas: number[] = []
  for (let i = 0; i + 1 < posted.length; i++) deltas.push((posted[i + 1]! - posted[i]!) / rttFactor)
  deltas.sort((a, b) => a - b)
  const n = Math.max(1, deltas.length - 2)
  const d = deltas.length === 0 ? [0] : deltas
  const median = (n - 1) % 2 ? (d[Math.floor(n / 2)]! + d[Math.floor(n / 2) - 1]!) / 2 : d[Math.floor(n / 2)]!
  let sum = 0
  for (let i = 0; i < n; i++) sum += d[i] ?? 0
  const avg = sum / n
  let varSum = 0
  for (let i = 0; i < n; i++) varSum += Math.trunc(avg - (d[i] ?? 0)) ** 2 // perftest squares an int
  const at = (k: number): number => d[Math.min(d.length - 1, k)]!
  return {
    size, iters: posted.length, min: d[0]!, max: at(n), typical: median, avg, stdev: Math.sqrt(varSum / n),
    p99: at(Math.ceil(n * 0.99)), p999: at(Math.ceil(n * 0.999)),
  }
}

/** REPORT_FMT_LAT. */
export function latLine(f: LatFigures): string {
  return ` ${String(f.size).padEnd(7)} ${f.iters}          ${leftF(f.min, 7, 2)}        ${leftF(f.max, 7, 2)}      ${leftF(f.typical, 7, 2)}  \t       ${leftF(f.avg, 7, 2)}     \t${leftF(f.stdev, 7, 2)}\t\t${leftF(f.p99, 7, 2)} \t\t${leftF(f.p999, 7, 2)}\n`
}
