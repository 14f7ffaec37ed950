/** `rdma-session <command> [options]`: finds the command, runs it, turns errors into exit codes. */
import { UsageError, processIo, type Command, type CommandIo } from './command.js'
import { COMMANDS } from './commands/index.js'

export function helpText(commands: readonly Command[] = COMMANDS): string {
  const width = Math.max(...commands.map((c) => c.name.length))
  return [
    'usage: rdma-session <command> [options]',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "run 'rdma-session <command> --help' for a command's options",
    '',
  ].join('\n')
}

/** Runs the command line `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: readonly string[], io: CommandIo = processIo(), commands: readonly Command[] = COMMANDS): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(helpText(commands))
    return name === undefined ? 2 : 0
  }
  if (name === '--version' || name === '-v') {
    io.out(`${VERSION}\n`)
    return 0
  }
  const command = commands.find((c) => c.name === name)
  if (command === undefined) {
    io.err(`rdma-session: unknown command '${name}'\n\n${helpText(commands)}`)
    return 2
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(command.usage)
    return 0
  }
  try {
    return await command.run(rest, io)
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`rdma-session ${command.name}: ${err.message}\n\n${command.usage}`)
      return 2
    }
    const e = err as { code?: string; message?: string }
    io.err(`rdma-session ${command.name}: ${e.code === undefined ? '' : `${e.code}: `}${e.message ?? String(err)}\n`)
    return 1
  }
}

declare const __CLI_VERSION__: string | undefined
const VERSION = typeof __CLI_VERSION__ === 'string' ? __CLI_VERSION__ : 'development'
