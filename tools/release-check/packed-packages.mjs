// The workspace's publishable packages: list them in dependency order, pack each with
// pnpm (which rewrites workspace: ranges), check what went into the tarball, lint the
// tarball with publint and attw, and publish it.
import { execFile, execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts })

/** Every non-private workspace package, dependencies before dependents. */
export function publishablePackages(root) {
  const all = JSON.parse(sh('pnpm', ['-r', 'ls', '--json', '--depth', '-1'], { cwd: root }))
  const pkgs = all
    .filter((p) => p.path !== root && p.private !== true)
    .map((p) => ({ name: p.name, version: p.version, dir: p.path, manifest: JSON.parse(readFileSync(join(p.path, 'package.json'), 'utf8')) }))
  const byName = new Map(pkgs.map((p) => [p.name, p]))
  const ordered = []
  const seen = new Set()
  const visit = (p) => {
    if (seen.has(p.name)) return
    seen.add(p.name)
    const m = p.manifest
    for (const dep of Object.keys({ ...m.dependencies, ...m.peerDependencies, ...m.optionalDependencies })) {
      const d = byName.get(dep)
      if (d !== undefined) visit(d)
    }
    ordered.push(p)
  }
  for (const p of [...pkgs].sort((a, b) => a.name.localeCompare(b.name))) visit(p)
  return ordered
}

/** Paths that `exports`, `main`, `module`, `types` and `bin` point to. */
function entryPoints(manifest) {
  const out = new Set()
  const walk = (v) => {
    if (typeof v === 'string') {
      if (v.startsWith('./') && !v.includes('*')) out.add(v.slice(2))
    } else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) walk(x)
  }
  walk(manifest.exports)
  for (const f of ['main', 'module', 'types']) if (typeof manifest[f] === 'string') out.add(manifest[f].replace(/^\.\//, ''))
  const bins = typeof manifest.bin === 'string' ? [manifest.bin] : Object.values(manifest.bin ?? {})
  for (const b of bins) out.add(String(b).replace(/^\.\//, ''))
  return [...out]
}

/**
 * Packs `pkg` into `dest` and checks the tarball: its package.json has no workspace:
 * ranges left and every entry point is inside. Returns { tarball, manifest, files }.
 */
export function packPackage(pkg, dest) {
  const before = new Set(readdirSync(dest))
  sh('pnpm', ['pack', '--pack-destination', dest], { cwd: pkg.dir })
  const made = readdirSync(dest).filter((f) => f.endsWith('.tgz') && !before.has(f))
  if (made.length !== 1) throw new Error(`pnpm pack in ${pkg.dir} made ${made.length} tarballs`)
  const tarball = join(dest, made[0])
  const files = sh('tar', ['-tzf', tarball]).split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''))
  const manifest = JSON.parse(sh('tar', ['-xzOf', tarball, 'package/package.json']))
  const problems = []
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
    for (const [dep, range] of Object.entries(manifest[field] ?? {})) if (String(range).startsWith('workspace:')) problems.push(`${field}.${dep} is still "${range}"`)
  }
  for (const entry of entryPoints(manifest)) if (!files.includes(entry)) problems.push(`entry point ${entry} is not in the tarball (not built?)`)
  if (manifest.version !== pkg.version) problems.push(`tarball version ${manifest.version} differs from the workspace's ${pkg.version}`)
  if (problems.length > 0) throw new Error(`${pkg.name}: ${problems.join('; ')}`)
  return { tarball, manifest, files }
}

/** True when no export offers a "require" condition and `main` is not CJS: an ESM-only package (the CLI). */
function esmOnly(manifest) {
  const text = JSON.stringify(manifest.exports ?? {})
  return !text.includes('"require"') && !/\.cjs$/.test(manifest.main ?? '')
}

/**
 * publint --strict and attw (node16 profile) on the tarball itself: what users download.
 * An ESM-only package is allowed what that means (require() of it is a dynamic import).
 */
export function lintTarball(root, tarball, manifest = {}) {
  const bin = (name) => join(root, 'node_modules', '.bin', name)
  try {
    sh(bin('publint'), ['--strict', tarball], { cwd: root })
  } catch (err) {
    throw new Error(`publint --strict ${tarball}:\n${err.stdout}${err.stderr}`)
  }
  try {
    sh(bin('attw'), [tarball, '--profile', 'node16', '--format', 'table-flipped', ...(esmOnly(manifest) ? ['--ignore-rules', 'cjs-resolves-to-esm'] : [])], { cwd: root })
  } catch (err) {
    throw new Error(`attw ${tarball}:\n${err.stdout}${err.stderr}`)
  }
}

/** npm publish of a packed tarball to the local registry (asynchronous: several run at once). */
export function publishTarball(tarball, { url, npmrc }) {
  return new Promise((resolve, reject) => {
    execFile('npm', ['publish', tarball, '--registry', url, '--userconfig', npmrc, '--access', 'public', '--ignore-scripts'], { encoding: 'utf8', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`npm publish ${tarball}:\n${stdout}${stderr}`))
      else resolve()
    })
  })
}
