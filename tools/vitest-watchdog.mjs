// Vitest global setup (runs in the main vitest process of every package): a hard limit on
// one package's whole test run. Vitest's own test and hook timeouts run inside the worker,
// so a worker whose event loop is stuck never reports; this timer lives in the main process.
// When it fires it asks every descendant node process for a diagnostic report (CI starts
// node with --report-on-signal), prints their JavaScript stacks and active handles, kills
// them and exits 1. The package then has no test-results.json, which the CI summary counts
// as a failure: a hang costs minutes and says where it was, instead of eating the CI budget.
import { readFileSync, readdirSync, mkdirSync, existsSync } from 'node:fs'
import { join } from 'node:path'

const limitMin = Number(process.env.RDMA_TEST_WATCHDOG_MIN ?? 20)

/** Pids of every process below `root`, from /proc (Linux only; empty elsewhere). */
export function descendants(root) {
  if (!existsSync('/proc')) return []
  const children = new Map()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (!children.has(ppid)) children.set(ppid, [])
      children.get(ppid).push(Number(name))
    } catch {
      // exited meanwhile
    }
  }
  const out = []
  const walk = (pid) => {
    for (const c of children.get(pid) ?? []) {
      out.push(c)
      walk(c)
    }
  }
  walk(root)
  return out
}

function commandLine(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 200)
  } catch {
    return '(gone)'
  }
}

function printReports(dir, since) {
  if (dir === null || !existsSync(dir)) {
    console.error('vitest-watchdog: no report directory (start node with --report-on-signal --report-directory=DIR to get stacks)')
    return
  }
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    try {
      const r = JSON.parse(readFileSync(join(dir, file), 'utf8'))
      if (new Date(r.header.dumpEventTime).getTime() < since) continue
      const handles = (r.libuv ?? []).filter((h) => h.is_active).map((h) => `${h.type}${h.remoteEndpoint ? ` ${JSON.stringify(h.remoteEndpoint)}` : ''}`)
      console.error(`--- pid ${r.header.processId}: ${r.header.commandLine.join(' ').slice(0, 200)}`)
      console.error(`    JS stack: ${r.javascriptStack?.message ?? ''}\n      ${(r.javascriptStack?.stack ?? []).slice(0, 25).join('\n      ')}`)
      console.error(`    active handles: ${handles.join(', ')}`)
    } catch (err) {
      console.error(`vitest-watchdog: unreadable report ${file}: ${err.message}`)
    }
  }
}

function reportDirectory() {
  const m = /--report-directory[= ](\S+)/.exec(process.env.NODE_OPTIONS ?? '')
  return m === null ? null : m[1]
}

export default function setup() {
  if (!(limitMin > 0)) return undefined
  const started = Date.now()
  const timer = setTimeout(() => {
    const pids = descendants(process.pid)
    console.error(`\nvitest-watchdog: the tests of ${process.cwd()} are still running after ${limitMin} min; stopping them. Processes:`)
    for (const pid of pids) console.error(`  ${pid} ${commandLine(pid)}`)
    const dir = reportDirectory()
    if (dir !== null) mkdirSync(dir, { recursive: true })
    // Without --report-on-signal, SIGUSR2 would simply kill node: only ask when reports are on.
    const nodes = dir === null ? [] : [process.pid, ...pids].filter((pid) => /(^|\/)node( |$)/.test(commandLine(pid)))
    for (const pid of nodes) {
      try {
        process.kill(pid, 'SIGUSR2')
      } catch {
        // gone
      }
    }
    setTimeout(() => {
      printReports(dir, started)
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone
        }
      }
      console.error(`vitest-watchdog: ${process.cwd()} FAILED: hung for ${limitMin} min`)
      process.exit(1)
    }, 5000).unref()
  }, limitMin * 60_000)
  timer.unref()
  return () => clearTimeout(timer)
}
