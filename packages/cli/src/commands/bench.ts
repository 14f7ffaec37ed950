/** `rdma-session bench`: the benchmark suites on the providers available here, with a progress bar, a table, JSON and SVG plots. */
import { parseArgs } from 'node:util'
import { isRdmaError, parseRate } from '@rdma-session/core'
import { UsageError, type Command } from '../command.js'
import { knownProvider } from '../command-errors.js'
import { progressBar } from '../bench/progress-bar.js'
import { DEFAULT_MOCK_LINK, formatBench, runBench, type BenchOptions } from '../bench/run-bench.js'

/** The options of a command line (exported for tests). */
export function parseBenchArgs(args: readonly string[]): Omit<BenchOptions, 'onProgress' | 'makeProvider'> {
  let values
  try {
    ;({ values } = parseArgs({ args: [...args], options: { out: { type: 'string' }, provider: { type: 'string', multiple: true }, quick: { type: 'boolean' }, 'mock-link': { type: 'string' } }, strict: true }))
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  for (const p of values.provider ?? []) knownProvider(p)
  let mockLinkBytesPerSecond = DEFAULT_MOCK_LINK
  if (values['mock-link'] !== undefined) {
    try {
      mockLinkBytesPerSecond = parseRate(values['mock-link'], '--mock-link')
    } catch (err) {
      throw isRdmaError(err) ? new UsageError(err.message) : err
    }
    if (mockLinkBytesPerSecond === 0) throw new UsageError(`--mock-link must be a positive rate, got '${values['mock-link']}'`)
  }
  return {
    out: values.out ?? 'rdma-session-bench',
    ...(values.provider === undefined ? {} : { providers: values.provider }),
    quick: values.quick === true,
    mockLinkBytesPerSecond,
  }
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'benchmark each provider available here against its baseline: table, report.json and SVG plots',
  usage: `usage: rdma-session bench [--out dir] [--provider name]... [--quick] [--mock-link rate]

  --out <dir>         where report.json, throughput.svg, latency.svg and qos.svg go (default rdma-session-bench)
  --provider <name>   only this provider (repeatable; default: mock, softroce, verbs — those that cannot run are skipped)
  --quick             fewer sizes and samples (a smoke run)
  --mock-link <rate>  the mock's link rate for the QoS suite (default 1Gbps); case matters: b = bit, B = byte
                      ('1Gbps', '800Mbit/s', '100MB/s', '64MiB/s')
`,
  async run(args, io) {
    const report = await runBench({ ...parseBenchArgs(args), onProgress: progressBar(io.err, io.errIsTty) })
    io.out(formatBench(report))
    return report.providers.length > 0 ? 0 : 1
  },
}
