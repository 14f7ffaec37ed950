// A throwaway Verdaccio registry on 127.0.0.1 for the release check: temp storage, our
// @rdma-session scope served only from what we publish, everything else proxied to the
// npm registry npm is configured with (consumers still need ws, valibot, @types/node).
import { spawn, execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function upstreamRegistry() {
  try {
    const url = execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).trim()
    if (/^https?:\/\//.test(url)) return url.endsWith('/') ? url : `${url}/`
  } catch {}
  return 'https://registry.npmjs.org/'
}

/** The Verdaccio config: no web UI, htpasswd users, our scope never proxied. */
export function verdaccioConfig({ storage, htpasswd, upstream }) {
  return `storage: ${JSON.stringify(storage)}
auth:
  htpasswd:
    file: ${JSON.stringify(htpasswd)}
    max_users: 10
uplinks:
  upstream:
    url: ${JSON.stringify(upstream)}
    timeout: 60s
    maxage: 30m
packages:
  '@rdma-session/*':
    access: $all
    publish: $authenticated
    unpublish: $authenticated
  '**':
    access: $all
    publish: $authenticated
    proxy: upstream
web:
  enable: false
max_body_size: 200mb
log: { type: stdout, format: pretty, level: warn }
`
}

/**
 * Starts Verdaccio in `dir` and resolves once it answers /-/ping. Returns
 * { url, token, npmrc, stop() }; `npmrc` is a user config with the token for publishing.
 */
export async function startLocalRegistry(dir, { log = () => {} } = {}) {
  mkdirSync(join(dir, 'storage'), { recursive: true })
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  const config = join(dir, 'config.yaml')
  writeFileSync(config, verdaccioConfig({ storage: join(dir, 'storage'), htpasswd: join(dir, 'htpasswd'), upstream: upstreamRegistry() }))
  const bin = join(require.resolve('verdaccio/package.json'), '..', 'bin', 'verdaccio')
  const child = spawn(process.execPath, ['--no-warnings', bin, '--config', config, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production' } })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  let exited = null
  child.once('exit', (code, signal) => (exited = { code, signal }))

  const stop = () =>
    new Promise((resolve) => {
      if (exited !== null) return resolve()
      child.once('exit', () => resolve())
      child.kill('SIGTERM')
      setTimeout(() => child.kill('SIGKILL'), 3000).unref()
    })

  const deadline = Date.now() + 30_000
  for (;;) {
    if (exited !== null) throw new Error(`verdaccio exited (${exited.code ?? exited.signal}) before answering:\n${output}`)
    try {
      const r = await fetch(`${url}-/ping`)
      if (r.ok) break
    } catch {}
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`verdaccio did not answer on ${url} within 30 s:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  log(`verdaccio ${require('verdaccio/package.json').version} on ${url} (storage ${join(dir, 'storage')})`)

  // A user for publishing (Verdaccio's htpasswd plugin registers on first login).
  const r = await fetch(`${url}-/user/org.couchdb.user:release-check`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'release-check', password: 'release-check-password', email: 'release-check@localhost' }),
  })
  const body = await r.json().catch(() => ({}))
  if (!r.ok || typeof body.token !== 'string') {
    await stop()
    throw new Error(`could not register a publishing user on ${url}: HTTP ${r.status} ${JSON.stringify(body)}`)
  }
  const npmrc = join(dir, 'npmrc')
  writeFileSync(npmrc, `registry=${url}\n//127.0.0.1:${port}/:_authToken=${body.token}\naudit=false\nfund=false\nupdate-notifier=false\n`)
  return { url, token: body.token, npmrc, stop, output: () => output }
}
