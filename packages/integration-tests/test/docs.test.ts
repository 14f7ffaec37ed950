/**
 * Every command and code block in the READMEs and docs works as written. Each fenced block is
 * preceded by a marker saying what this test does with it:
 *
 *   <!-- doc-test: run -->            sh: each line runs in a fresh temp dir (the workspace's bins on PATH), exit 0
 *   <!-- doc-test: run-in-repo -->    sh: the same, from the repository root
 *   <!-- doc-test: typecheck -->      ts/js: a whole program, compiled with tsc --strict against the workspace packages
 *   <!-- doc-test: run-program -->    ts: typechecked, then run on the mock and (mock() swapped for softroce) on softroce: must exit 0 by itself
 *   <!-- doc-test: skip: <reason> --> not run (root, a NIC, a peer host, a long-running daemon, a fragment…): the reason is required
 *
 * Whatever the marker, every shell line is checked statically: `rdma-session <command>` names a
 * command, `npx` runs a package of this workspace by its scoped name, `pnpm <script>` and
 * `pnpm --filter <package> <script>` exist. Inline `code` that looks like a command gets the same check.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { COMMANDS } from '@rdma-session/cli'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const SNIPPETS = join(ROOT, 'packages', 'integration-tests', '.doc-snippets')
const BIN = join(ROOT, 'node_modules', '.bin')

type Marker = { kind: 'run' | 'run-in-repo' | 'typecheck' | 'run-program' } | { kind: 'skip'; reason: string }

interface Block {
  readonly file: string
  readonly line: number
  readonly lang: string
  readonly code: string
  readonly marker: Marker | null
}

/** The Markdown files a user reads: every tracked .md except changesets and changelogs. */
function docFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '*.md'], { cwd: ROOT, encoding: 'utf8' })
  return out.split('\n').filter((f) => f !== '' && !f.startsWith('.changeset/') && !/CHANGELOG\.md$/.test(f))
}

function blocksOf(file: string): Block[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!)
    if (open === null) continue
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!)
    let marker: Marker | null = null
    for (let j = start - 1; j >= 0 && j >= start - 2; j--) {
      const m = /^<!-- doc-test: (run-in-repo|run-program|run|typecheck|skip)(?:: (.+?))? -->\s*$/.exec(lines[j]!)
      if (m === null) continue
      marker = m[1] === 'skip' ? { kind: 'skip', reason: (m[2] ?? '').trim() } : { kind: m[1] as 'run' }
      break
    }
    blocks.push({ file, line: start + 1, lang: open[1] ?? '', code: body.join('\n'), marker })
  }
  return blocks
}

const ALL = docFiles().flatMap(blocksOf)
const isShell = (b: Block): boolean => b.lang === 'sh' || b.lang === 'bash' || b.lang === 'shell'
const isCode = (b: Block): boolean => ['ts', 'js', 'typescript', 'javascript', 'mjs'].includes(b.lang)
const where = (b: Block): string => `${b.file}:${b.line}`

/** Workspace packages: name -> { scripts, bin }. */
function workspace(): Map<string, { scripts: Record<string, string>; bin: boolean }> {
  const map = new Map<string, { scripts: Record<string, string>; bin: boolean }>()
  for (const dir of ['packages', 'examples']) {
    for (const d of readdirSync(join(ROOT, dir))) {
      try {
        const p = JSON.parse(readFileSync(join(ROOT, dir, d, 'package.json'), 'utf8')) as { name: string; scripts?: Record<string, string>; bin?: unknown }
        map.set(p.name, { scripts: p.scripts ?? {}, bin: p.bin !== undefined })
      } catch {}
    }
  }
  return map
}
const PACKAGES = workspace()
const ROOT_SCRIPTS = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
const PNPM_BUILTINS = new Set(['install', 'i', 'add', 'exec', 'dlx', 'run', 'test', 'remove', 'update', 'why', 'list', 'ls'])
const COMMAND_NAMES = new Set([...COMMANDS.map((c) => c.name), 'help'])

/** The scripts and bins `pnpm <name>` can run from `dir` (a doc's folder): its nearest package's, and the root's. */
function pnpmRunnable(dir: string): Set<string> {
  const names = new Set([...PNPM_BUILTINS, ...Object.keys(ROOT_SCRIPTS), ...readdirSync(BIN)])
  for (let d = join(ROOT, dir); d.startsWith(ROOT) && d !== ROOT; d = dirname(d)) {
    try {
      const p = JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }
      for (const s of Object.keys(p.scripts ?? {})) names.add(s)
      for (const b of readdirSync(join(d, 'node_modules', '.bin'))) names.add(b)
      break
    } catch {}
  }
  return names
}

/** Problems with one shell command line written in a doc in `dir` (empty when it reads right). */
function checkCommand(line: string, dir = '.'): string[] {
  const problems: string[] = []
  const cmd = line.replace(/\s+#.*$/, '').trim()
  if (cmd === '' || cmd.startsWith('#')) return problems
  for (const part of cmd.split(/\s*(?:&&|\|\||;|\|)\s*/)) {
    const words = part.split(/\s+/).filter((w) => !/^[A-Z_]+=/.test(w))
    const [head, ...rest] = words
    if (head === 'rdma-session' && rest[0] !== undefined && !rest[0].startsWith('-') && !COMMAND_NAMES.has(rest[0])) problems.push(`'rdma-session ${rest[0]}' is no command`)
    if (head === 'npx') {
      const pkg = rest.find((w) => !w.startsWith('-'))
      if (pkg === undefined || !pkg.startsWith('@rdma-session/')) problems.push(`'npx ${pkg ?? ''}' runs a package outside this project (an unscoped name anyone can publish): use 'npx @rdma-session/cli …'`)
      else if (PACKAGES.get(pkg)?.bin !== true) problems.push(`'npx ${pkg}': no package of this workspace with that name has a bin`)
    }
    if (head === 'pnpm' && rest[0] !== undefined) {
      if (rest[0] === '--filter' || rest[0] === '-F') {
        const pkg = PACKAGES.get(rest[1] ?? '')
        if (pkg === undefined) problems.push(`'pnpm --filter ${rest[1]}': no such workspace package`)
        else if (rest[2] !== undefined && !PNPM_BUILTINS.has(rest[2]) && pkg.scripts[rest[2]] === undefined) problems.push(`'pnpm --filter ${rest[1]} ${rest[2]}': no such script`)
      } else if (rest[0] === 'exec' && rest[1] === 'rdma-session' && rest[2] !== undefined && !rest[2].startsWith('-') && !COMMAND_NAMES.has(rest[2])) {
        problems.push(`'rdma-session ${rest[2]}' is no command`)
      } else if (!rest[0].startsWith('-') && !pnpmRunnable(dir).has(rest[0])) {
        problems.push(`'pnpm ${rest[0]}': no such script or bin (root, or the package of ${dir})`)
      }
    }
  }
  return problems
}

/** Inline `code` in prose that is a command: `npx …`, `pnpm …`, `rdma-session …`. */
function inlineCommands(file: string): Array<{ line: number; cmd: string }> {
  const text = readFileSync(join(ROOT, file), 'utf8').split('\n')
  const out: Array<{ line: number; cmd: string }> = []
  let fenced = false
  text.forEach((l, i) => {
    if (/^```/.test(l)) fenced = !fenced
    if (fenced) return
    for (const m of l.matchAll(/`((?:npx|pnpm|rdma-session) [^`]+)`/g)) out.push({ line: i + 1, cmd: m[1]! })
  })
  return out
}

function runShell(line: string, cwd: string, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', line], { cwd, env: { ...process.env, PATH: `${BIN}:${process.env.PATH ?? ''}`, RDMA_SESSION_PROVIDER: '' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => (output += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

describe('docs: every block says what the test does with it', () => {
  it('has blocks to check', () => {
    expect(ALL.length).toBeGreaterThan(20)
  })
  it.each(ALL.filter((b) => isShell(b) || isCode(b)).map((b) => [where(b), b] as const))('%s has a doc-test marker (a skip gives its reason)', (_w, b) => {
    expect(b.marker, `${where(b)}: add <!-- doc-test: … --> before the block`).not.toBeNull()
    if (b.marker?.kind === 'skip') expect(b.marker.reason.length, `${where(b)}: a skip needs a reason`).toBeGreaterThan(10)
    if (isShell(b)) expect(['run', 'run-in-repo', 'skip']).toContain(b.marker!.kind)
    if (isCode(b)) expect(['typecheck', 'run-program', 'skip']).toContain(b.marker!.kind)
  })
})

describe('docs: commands name things that exist', () => {
  const lines = ALL.filter(isShell).flatMap((b) => b.code.split('\n').map((l, i) => ({ at: `${b.file}:${b.line + 1 + i}`, dir: dirname(b.file), cmd: l })))
  const inline = docFiles().flatMap((f) => inlineCommands(f).map((c) => ({ at: `${f}:${c.line}`, dir: dirname(f), cmd: c.cmd })))
  it.each([...lines, ...inline].filter((c) => c.cmd.trim() !== '').map((c) => [c.at, c.cmd, c.dir] as const))('%s: %s', (_at, cmd, dir) => {
    expect(checkCommand(cmd, dir)).toEqual([])
  })
  it('the check itself refuses what issue 21 found', () => {
    expect(checkCommand('npx rdma-session doctor')).toHaveLength(1)
    expect(checkCommand('rdma-session docter')).toHaveLength(1)
    expect(checkCommand('pnpm --filter @rdma-session/nope build')).toHaveLength(1)
    expect(checkCommand('npx @rdma-session/cli doctor')).toEqual([])
  })
})

describe('docs: shell blocks marked run', () => {
  const runnable = ALL.filter((b) => isShell(b) && (b.marker?.kind === 'run' || b.marker?.kind === 'run-in-repo'))
  it.each(runnable.map((b) => [where(b), b] as const))('%s runs', async (_w, b) => {
    const cwd = b.marker?.kind === 'run-in-repo' ? ROOT : mkdtempSync(join(tmpdir(), 'doc-run-'))
    for (const raw of b.code.split('\n')) {
      const line = raw.replace(/\s+#.*$/, '').trim()
      if (line === '' || line.startsWith('#')) continue
      const { code, output } = await runShell(line, cwd, 120_000)
      expect(code, `${where(b)}: \`${line}\` exited ${code}:\n${output.slice(-2000)}`).toBe(0)
    }
  }, 600_000)
})

describe('docs: code blocks', () => {
  const programs = ALL.filter((b) => isCode(b) && (b.marker?.kind === 'typecheck' || b.marker?.kind === 'run-program'))
  const name = (b: Block): string => `${b.file.replace(/[^A-Za-z0-9]+/g, '_')}_${b.line}`

  it('every typecheck and run-program block compiles with tsc --strict', () => {
    rmSync(SNIPPETS, { recursive: true, force: true })
    mkdirSync(SNIPPETS, { recursive: true })
    for (const b of programs) writeFileSync(join(SNIPPETS, `${name(b)}.mts`), `${b.code}\nexport {}\n`)
    writeFileSync(join(SNIPPETS, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', types: ['node'], skipLibCheck: true, lib: ['ES2022'] }, include: ['*.mts'] }))
    let output = ''
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(SNIPPETS, 'tsconfig.json')], { cwd: SNIPPETS, encoding: 'utf8' })
    } catch (err) {
      output = String((err as { stdout?: string }).stdout ?? err)
    }
    // Name the doc and line for each diagnostic.
    const readable = output.replace(/^(\S+?)_(\d+)\.mts\((\d+),(\d+)\)/gm, (_m, f: string, l: string, row: string) => {
      const b = programs.find((p) => name(p) === `${f}_${l}`)
      return b === undefined ? _m : `${b.file}:${b.line + Number(row)}`
    })
    expect(readable).toBe('')
  }, 180_000)

  const runPrograms = programs.filter((b) => b.marker?.kind === 'run-program')
  it.each(runPrograms.flatMap((b) => (['mock', 'softroce'] as const).map((p) => [where(b), p, b] as const)))('%s runs on %s and exits by itself', async (_w, provider, b) => {
    const ts = (await import('typescript')).default
    let code = b.code
    if (provider === 'softroce') {
      code = code.replace("import { mock } from '@rdma-session/provider-mock'", "import { softroce } from '@rdma-session/provider-softroce'").replace(/\bmock\(\)/g, "softroce({ address: '127.0.0.1', port: 0 })")
      expect(code).toContain('softroce(')
    }
    const js = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
    mkdirSync(SNIPPETS, { recursive: true })
    const file = join(SNIPPETS, `${name(b)}-${provider}.mjs`)
    writeFileSync(file, js)
    const { code: exit, output } = await runShell(`node ${relative(SNIPPETS, file)}`, SNIPPETS, 120_000)
    expect(exit, `${where(b)} on ${provider} (killed after 120 s if it does not exit):\n${output.slice(-3000)}`).toBe(0)
  }, 180_000)
})
