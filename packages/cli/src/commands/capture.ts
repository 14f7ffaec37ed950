/** `rdma-session capture [file]`: run a short softroce session between two local stacks and write its packets to a pcap. */
import { parseArgs } from 'node:util'
import { UsageError, type Command } from '../command.js'
import { runCapture } from '../capture/run-capture.js'

export const ENCRYPTED_CAPTURE_WARNING =
  'warning: --encrypt: every packet carries a PSP-like header and ciphertext after its BTH. Wireshark and tshark do not know\n' +
  'that header: they dissect the bytes as InfiniBand extension headers and payload, so everything after the BTH (RETH, AETH,\n' +
  'payload) shows garbage or "malformed packet". Only the BTH (opcode, QPN, PSN) is true; capture without --encrypt to read the rest.\n'

export const captureCommand: Command = {
  name: 'capture',
  summary: 'run a short softroce session between two local stacks and write every packet to a pcap for Wireshark',
  usage: `usage: rdma-session capture [file.pcap] [--encrypt]

  file.pcap   where to write (default rdma-session.pcap)
  --encrypt   AES-256-GCM session: after each BTH come a PSP-like header and ciphertext, which
              Wireshark does not know: it dissects them as InfiniBand headers and shows garbage
              (bogus RETH/AETH fields, malformed packets). Only the BTH (opcode, QPN, PSN) reads true.
`,
  async run(args, io) {
    let parsed
    try {
      parsed = parseArgs({ args: [...args], options: { encrypt: { type: 'boolean' } }, allowPositionals: true, strict: true })
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    if (parsed.positionals.length > 1) throw new UsageError('give one output file')
    const encrypt = parsed.values.encrypt === true
    if (encrypt) io.err(ENCRYPTED_CAPTURE_WARNING)
    const r = await runCapture({ path: parsed.positionals[0] ?? 'rdma-session.pcap', encrypt })
    const lines = [
      `softroce stacks: ${r.endpoints.join(' <-> ')}`,
      ...r.steps.map((s) => `  ${s}`),
      `wrote ${r.packets} packets to ${r.path}`,
      '',
      'open it:',
      `  wireshark ${r.path}${r.udpPort === 4791 ? '' : `   (Analyze > Decode As: UDP port ${r.udpPort} -> InfiniBand)`}`,
      `  ${r.tsharkCommand}`,
    ]
    if (r.decoded !== undefined) lines.push('', 'tshark decodes it as:', ...Object.entries(r.decoded).map(([op, n]) => `  ${op.padEnd(26)} × ${n}`))
    io.out(`${lines.join('\n')}\n`)
    return 0
  },
}
