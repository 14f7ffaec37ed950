/** `rdma-session bench`: the benchmark suites on the providers available here, with a progress bar, a table, JSON and SVG plots. */
import { parseArgs } from 'node:util'
import { UsageError, type Command } from '../command.js'
import { knownProvider } from '../command-errors.js'
import { progressBar } from '../bench/progress-bar.js'
import { formatBench, runBench } from '../bench/run-bench.js'

export const benchCommand: Command = {
  name: 'bench',
  summary: 'benchmark each provider available here against its baseline: table, report.json and SVG plots',
  usage: `usage: rdma-session bench [--out dir] [--provider name]... [--quick]

  --out <dir>        where report.json, throughput.svg, latency.svg and qos.svg go (default rdma-session-bench)
  --provider <name>  only this provider (repeatable; default: mock, softroce, verbs — those that cannot run are skipped)
  --quick            fewer sizes and samples (a smoke run)
`,
  async run(args, io) {
    let values
    try {
      ;({ values } = parseArgs({ args: [...args], options: { out: { type: 'string' }, provider: { type: 'string', multiple: true }, quick: { type: 'boolean' } }, strict: true }))
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    for (const p of values.provider ?? []) knownProvider(p)
    const report = await runBench({
      out: values.out ?? 'rdma-session-bench',
      ...(values.provider === undefined ? {} : { providers: values.provider }),
      quick: values.quick === true,
      onProgress: progressBar(io.err, io.errIsTty),
    })
    io.out(formatBench(report))
    return report.providers.length > 0 ? 0 : 1
  },
}
