/** Child processes that speak JSON lines: start, wait for an event, send a command, kill; every one is stopped by stopAll(). */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url))

export interface Event {
  readonly event: string
  readonly [k: string]: unknown
}

export class JsonProcess {
  readonly child: ChildProcess
  readonly events: Event[] = []
  readonly stderr: string[] = []
  #waiters: { match: (e: Event) => boolean; resolve: (e: Event) => void }[] = []
  exited: Promise<number | null>

  constructor(command: string, args: string[], env: Record<string, string> = {}, readonly name = args[0] ?? command) {
    this.child = spawn(command, args, { cwd: FIXTURES, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let e: Event
      try {
        e = JSON.parse(line) as Event
      } catch {
        return
      }
      this.events.push(e)
      for (const w of [...this.#waiters]) if (w.match(e)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1)
        w.resolve(e)
      }
    })
    createInterface({ input: this.child.stderr! }).on('line', (l) => this.stderr.push(l))
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)))
    running.add(this)
    void this.exited.then(() => running.delete(this))
  }

  /** The first event (already seen or coming) named `event` that matches. */
  wait(event: string, match: (e: Event) => boolean = () => true, ms = 20_000): Promise<Event> {
    const seen = this.events.find((e) => e.event === event && match(e))
    if (seen !== undefined) return Promise.resolve(seen)
    const err = this.events.find((e) => e.event === 'error')
    if (err !== undefined && event !== 'error') return Promise.reject(new Error(`${this.name}: ${JSON.stringify(err)}`))
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: no '${event}' within ${ms} ms; events ${JSON.stringify(this.events)}; stderr ${this.stderr.join('\n')}`)), ms)
      this.#waiters.push({ match: (e) => (e.event === event && match(e)) || e.event === 'error', resolve: (e) => {
        clearTimeout(t)
        if (e.event === 'error' && event !== 'error') reject(new Error(`${this.name}: ${JSON.stringify(e)}`))
        else resolve(e)
      } })
    })
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`)
  }

  /** Sends a command and waits for the event it answers with (counting from now). */
  async ask(line: string, event: string): Promise<Event> {
    const before = this.events.length
    this.send(line)
    return this.wait(event, (e) => this.events.indexOf(e) >= before)
  }
}

const running = new Set<JsonProcess>()

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map(async (p) => {
    p.child.kill('SIGKILL')
    await p.exited
  }))
}
