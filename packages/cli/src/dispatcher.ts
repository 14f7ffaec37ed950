/** `rdma-session <command> [options]`: finds the command, runs it, turns errors into exit codes. */
import { UsageError, processIo, type Command, type CommandIo } from './command.js'
import { COMMANDS } from './commands/index.js'
import { editDistance } from '@rdma-session/core'

export function helpText(commands: readonly Command[] = COMMANDS): string {
  const width = Math.max(...commands.map((c) => c.name.length))
  return [
    'usage: rdma-session <command> [options]',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "run 'rdma-session help <command>' (or 'rdma-session <command> --help') for a command's options",
    'exit codes: 0 done, 1 failed, 2 usage error',
    '',
  ].join('\n')
}

/** Runs the command line `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: readonly string[], io: CommandIo = processIo(), commands: readonly Command[] = COMMANDS): Promise<number> {
  const [name, ...rest] = argv
  if (name === 'help' && rest[0] !== undefined) {
    const topic = commands.find((c) => c.name === rest[0])
    if (topic === undefined) return unknownCommand(rest[0], io, commands)
    io.out(topic.usage)
    return 0
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(helpText(commands))
    return name === undefined ? 2 : 0
  }
  if (name === '--version' || name === '-v') {
    io.out(`${VERSION}\n`)
    return 0
  }
  const command = commands.find((c) => c.name === name)
  if (command === undefined) return unknownCommand(name, io, commands)
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
    io.err(`rdma-session ${command.name}: ${errorText(err)}\n`)
    return 1
  }
}

/** `CODE: message`, without repeating a code the message already starts with (Node's fs errors do). */
function errorText(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null
  const message = typeof e?.message === 'string' ? e.message : String(err)
  const code = typeof e?.code === 'string' ? e.code : undefined
  return code === undefined || message.startsWith(`${code}:`) ? message : `${code}: ${message}`
}

function unknownCommand(name: string, io: CommandIo, commands: readonly Command[]): number {
  const near = commands.find((c) => c.name.startsWith(name) || name.startsWith(c.name) || editDistance(c.name, name) <= 2)
  io.err(`rdma-session: unknown command '${name}'${near === undefined ? '' : `; did you mean '${near.name}'?`}\n\n${helpText(commands)}`)
  return 2
}

declare const __CLI_VERSION__: string | undefined
const VERSION = typeof __CLI_VERSION__ === 'string' ? __CLI_VERSION__ : 'development'
