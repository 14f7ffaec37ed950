/** What every `rdma-session` command implements, and the I/O it is given (so tests can capture it). */

export interface CommandIo {
  /** Writes to standard output (results: tables, paths). */
  readonly out: (text: string) => void
  /** Writes to standard error (progress, warnings). */
  readonly err: (text: string) => void
  /** True when standard error is a terminal (progress bars redraw in place). */
  readonly errIsTty: boolean
  readonly env: NodeJS.ProcessEnv
  readonly cwd: string
}

export interface Command {
  readonly name: string
  /** One line for `rdma-session --help`. */
  readonly summary: string
  /** The command's own help text. */
  readonly usage: string
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(args: readonly string[], io: CommandIo): Promise<number>
}

/** A command-line mistake: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export function processIo(): CommandIo {
  return {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    errIsTty: process.stderr.isTTY === true,
    env: process.env,
    cwd: process.cwd(),
  }
}
