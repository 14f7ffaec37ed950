// Two local processes share one session through the session daemon (`rdma-session daemon`).
// Process A creates a session to a peer through the daemon; process B finds it by the peer's
// RoCE endpoint, joins it by ID and adds its own bulk QP — no second handshake with the peer,
// B's QP inherits the session's encryption with a key of its own. Each process writes into the
// peer's memory over its own QPs; the daemon lists one session, two processes, two QPs.
//
// QPs of different processes meet the peer over a network, so this example needs a network
// provider: softroce on loopback (the default here, and what RDMA_SESSION_PROVIDER=softroce
// selects) or verbs. The mock's fabric lives inside one process, so RDMA_SESSION_PROVIDER=mock
// is refused with that explanation.
//
//   node shared-session.mjs                 the whole demo (peer, daemon, processes A and B)
//   node shared-session.mjs worker <role> … one of the two processes (started by the demo)
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { connectDaemon, createContext } from '@rdma-session/core'

const provider = process.env.RDMA_SESSION_PROVIDER || 'softroce'
if (provider === 'mock') {
  console.error('shared-session: the mock fabric lives inside one process, and this example runs three; use RDMA_SESSION_PROVIDER=softroce (the default here) or verbs')
  process.exit(2)
}
const providerOptions = provider === 'softroce' ? { address: '127.0.0.1', port: 0 } : {}
const log = (...args) => console.log(...args)

if (process.argv[2] === 'worker') await worker(...process.argv.slice(3))
else await demo()

/** One of the two processes: `create` makes the session through the daemon, `join` joins it. */
async function worker(role, socketPath, tokenFile, target, pskHex) {
  const ctx = await createContext({ provider, providerOptions })
  const daemon = await connectDaemon(ctx, { socketPath, token: readFileSync(tokenFile, 'utf8').trim() })
  let session
  if (role === 'create') {
    session = await daemon.connect(target, { auth: { psk: Buffer.from(pskHex, 'hex') }, params: { encryption: ctx.capabilities.encryption ? 'aes-256-gcm' : 'none' }, qps: [{ qos: { class: 'latency', serviceLevel: 3 } }] })
  } else {
    const id = await daemon.query(target) // target: the peer's RoCE endpoint, address:port
    if (id === undefined) throw new Error(`the daemon knows no session to ${target}`)
    session = await daemon.join(id)
    await session.addQps([{ qos: { class: 'bulk', weight: 4 } }])
  }
  const mine = session.qps.filter((qp) => qp.qos.className === (role === 'create' ? 'latency' : 'bulk'))
  const region = session.remoteRegions.get('inbox')
  const text = Buffer.from(`hello from process ${role === 'create' ? 'A' : 'B'} (pid ${process.pid}) over QP ${mine[0].qpn}`)
  const mr = ctx.registerMemory(Buffer.from(text), { access: ['local-write'] })
  await mine[0].write(mr.slice(), { ...region, addr: region.addr + (role === 'create' ? 0 : 4096), length: text.length })
  process.stdout.write(`${JSON.stringify({ event: 'ready', role, sessionId: session.id, qps: mine.map((q) => q.qpn), encryption: session.params.encryption.suite, endpoint: ctx.endpoint })}\n`)
  for await (const line of createInterface({ input: process.stdin })) if (line.trim() === 'exit') break
  process.stdin.destroy()
  await ctx.close() // removes this process's QPs from the session (the peer is told through the daemon)
  daemon.close()
}

/** Starts a child and resolves with its first JSON line carrying `event`. */
function start(args, event, label) {
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const ready = new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let msg
      try {
        msg = JSON.parse(line)
      } catch {
        return
      }
      if (msg.event === event) resolve(msg)
    })
    child.once('exit', (code) => reject(new Error(`${label} exited with ${code} before '${event}'`)))
  })
  return { child, ready, exited: new Promise((r) => child.once('exit', r)) }
}

async function demo() {
  const dir = mkdtempSync(join(tmpdir(), 'rdma-shared-session-'))
  const socketPath = join(dir, 'daemon.sock')
  const tokenFile = join(dir, 'daemon.token')
  const psk = randomBytes(32)
  const children = []
  const peer = await createContext({ provider, providerOptions })
  try {
    // The peer: another host in real life; it exposes an inbox and serves the ws control plane.
    const inbox = peer.registerMemory(Buffer.alloc(8192), { access: ['local-write', 'remote-write'] })
    peer.sessions.expose('inbox', inbox.region())
    const server = await peer.listen({ host: '127.0.0.1', port: 0, auth: { psk } })
    const roce = `${peer.endpoint.address}:${peer.endpoint.port}`
    log(`provider: ${peer.provider.name}; peer: control plane ${server.url}, RoCE ${roce}`)

    // The daemon of this host, as `rdma-session daemon` runs it (Unix socket, mode 0600, token file).
    const bin = join(createRequire(import.meta.url).resolve('@rdma-session/cli/package.json'), '..', 'dist', 'bin.js')
    const daemon = start([bin, 'daemon', '--socket', socketPath, '--token-file', tokenFile], 'listening', 'daemon')
    children.push(daemon)
    await daemon.ready
    log(`daemon: listening on ${socketPath}`)

    const a = start([process.argv[1], 'worker', 'create', socketPath, tokenFile, server.url, psk.toString('hex')], 'ready', 'process A')
    children.push(a)
    const ra = await a.ready
    log(`process A (pid ${a.child.pid}): created session ${ra.sessionId} through the daemon, ${ra.encryption}, latency QP ${ra.qps.join(', ')}`)

    const b = start([process.argv[1], 'worker', 'join', socketPath, tokenFile, roce], 'ready', 'process B')
    children.push(b)
    const rb = await b.ready
    log(`process B (pid ${b.child.pid}): query ${roce} -> ${rb.sessionId}; joined it and added bulk QP ${rb.qps.join(', ')}`)
    log(`same session: ${ra.sessionId === rb.sessionId ? 'yes' : 'NO'}; B's RoCE endpoint ${rb.endpoint.address}:${rb.endpoint.port}, A's ${ra.endpoint.address}:${ra.endpoint.port}`)

    const lister = await connectDaemon(null, { socketPath, token: readFileSync(tokenFile, 'utf8').trim() })
    for (const s of await lister.list()) log(`daemon sessions: ${s.id} -> ${s.remote?.address ?? ''}${s.remote ? `:${s.remote.port}` : ''} processes ${s.clients}, QPs ${s.qps}`)
    lister.close()

    const peerSession = peer.sessions.get(ra.sessionId)
    log(`peer: session ${peerSession.id} has ${peerSession.size} QPs`)
    const read = (off) => Buffer.from(inbox.bytes.subarray(off, off + 80)).toString().replace(/\0+$/, '')
    log(`peer inbox[0]:    "${read(0)}"`)
    log(`peer inbox[4096]: "${read(4096)}"`)

    for (const p of [b, a]) {
      p.child.stdin.write('exit\n')
      await p.exited
    }
    // The last process to leave closes the session; the peer hears it over the control plane.
    for (let i = 0; i < 100 && peer.sessions.list().length > 0; i++) await new Promise((r) => setTimeout(r, 20))
    log(`processes exited; peer sessions left: ${peer.sessions.list().length === 0 ? 'none' : peer.sessions.list().length}`)
    daemon.child.kill('SIGTERM')
    await daemon.exited
    log('daemon stopped')
  } finally {
    for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL')
    await peer.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
