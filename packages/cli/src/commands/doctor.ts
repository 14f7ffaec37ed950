/** `rdma-session doctor`: Node, the verbs addon, libibverbs, devices and GIDs, rxe, UDP 4791, and each provider's verdict. */
import { parseArgs } from 'node:util'
import { UsageError, type Command } from '../command.js'
import { knownProvider } from '../command-errors.js'
import { formatDoctor, runDoctor } from '../doctor/diagnose.js'

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'check this machine: which providers work here, and for each that does not, why and what to do',
  usage: `usage: rdma-session doctor [--json] [--require <provider>]

  --json                print the report as JSON
  --require <provider>  exit 1 unless this provider (mock, softroce, verbs) is usable here
`,
  async run(args, io) {
    let values
    try {
      ;({ values } = parseArgs({ args: [...args], options: { json: { type: 'boolean' }, require: { type: 'string', multiple: true } }, strict: true }))
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    const required = values.require ?? []
    for (const r of required) knownProvider(r)
    const report = await runDoctor()
    io.out(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatDoctor(report))
    const missing = required.filter((r) => !report.providers.some((p) => p.provider === r && p.usable))
    if (missing.length > 0) {
      io.err(`rdma-session doctor: required provider${missing.length > 1 ? 's' : ''} not usable here: ${missing.join(', ')}\n`)
      return 1
    }
    return 0
  },
}
