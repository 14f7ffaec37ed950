/**
 * The guest side of ../cm-guest.test.ts, bundled on the host (tsup) and run in the rxe-vm guest
 * with --tap: provider-verbs' rdma_cm on rxe2, IPv4 (GID 1) then IPv6 (GID 2). Per family:
 *   rping-s   `rping -s` in the guest, provider-verbs connects as rping's client (rping -c -V -C 4)
 *   rping-c   provider-verbs listens as rping's server, `rping -c -v -V -C 4` connects
 *   qps       4 rdma_cm connections between two verbs contexts: private data both ways, WRITE,
 *             READ, SEND and FETCH_AND_ADD on every QP at once, per-QP stats; a consumer REJ and
 *             a REJ for a port nobody listens on, in words; disconnects from either side
 *   cross     against provider-softroce on the host (../../../provider-softroce/test/cm/interop/
 *             rping-child.ts, started by the test when it sees CM-CROSS-READY): verbs serves
 *             softroce's rping client, then connects as client to softroce's rping server
 * Each part prints `GUEST-RESULT <json>`.
 */
import { spawn } from 'node:child_process'
import { createContext, isRdmaError, type Context } from '@rdma-session/core'
import { createCm, verbs, type VerbsCmConnection, type VerbsConnectionManager } from '../../dist/index.js'
import { pingData, rpingClient, rpingListenOptions, rpingServer } from '../../../provider-softroce/test/cm/rping-peer.js'
import { part } from './guest-parts.js'

const COUNT = 4
interface Run { code: number | null; out: string }

function rping(args: string[]): { done: Promise<Run> } {
  const p = spawn('rping', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  p.stdout.on('data', (d: Buffer) => (out += d))
  p.stderr.on('data', (d: Buffer) => (out += d))
  return { done: new Promise((resolve) => p.on('close', (code) => resolve({ code, out }))) }
}

/** rping -c: retried until the listener is up (rping exits 1 on a REJ). */
async function rpingClientProcess(args: string[]): Promise<Run> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const r = await rping(args).done
    if (r.code === 0 || Date.now() > deadline || !/REJECTED|rdma_connect|connect error/i.test(r.out)) return r
    await new Promise((res) => setTimeout(res, 300))
  }
}

const access = { access: ['local-write', 'remote-write', 'remote-read', 'remote-atomic'] as const }

/** Several QPs over rdma_cm between two contexts on rxe2, traffic on all at once. */
async function severalQps(fam: 4 | 6, a: Context, cmA: VerbsConnectionManager, b: Context, cmB: VerbsConnectionManager, host: string): Promise<Record<string, unknown>> {
  const N = 4
  const port = 7540 + fam
  const serverMr = b.registerMemory(Buffer.alloc(N * 8192), { access: [...access.access] })
  const serverRecv = b.registerMemory(Buffer.alloc(N * 256), { access: ['local-write'] })
  const received: Promise<unknown>[] = []
  const requests: string[] = []
  const listener = cmB.listen({
    port,
    qp: { caps: { maxSendWr: 32, maxRecvWr: 8 } },
    onRequest: (req) => {
      const text = Buffer.from(req.privateData).toString('latin1').replace(/\0+$/, '')
      requests.push(text)
      if (text === 'please reject') return { reject: true, privateData: Buffer.from('not you') }
      return { privateData: Buffer.from(`welcome ${text}`) }
    },
    prepare: (qp) => {
      const i = received.length
      const p = qp.recv(serverRecv.slice(i * 256, 256))
      p.catch(() => {})
      received.push(p)
    },
  })
  // Refusals first: a consumer REJ with private data, and a port nobody listens on.
  let consumerRej = ''
  try {
    await cmA.connect({ host, port, privateData: Buffer.from('please reject') })
  } catch (err) {
    consumerRej = `${(err as { code?: string }).code}: ${(err as Error).message}; privateData ${Buffer.from(((err as { details?: { privateData?: Uint8Array } }).details?.privateData) ?? []).toString('latin1').replace(/\0+$/, '')}`
  }
  let noListener = ''
  try {
    await cmA.connect({ host, port: port + 100 })
  } catch (err) {
    noListener = `${(err as { code?: string }).code}: ${(err as Error).message}`
  }
  const clients: VerbsCmConnection[] = []
  const servers: VerbsCmConnection[] = []
  const accepted = (async () => {
    for (let i = 0; i < N; i++) servers.push(await listener.accept())
  })()
  for (let i = 0; i < N; i++) clients.push(await cmA.connect({ host, port, privateData: Buffer.from(`qp-${i}`), qp: { caps: { maxSendWr: 32, maxRecvWr: 8 } } }))
  await accepted
  const repData = clients.map((c) => Buffer.from(c.privateData).toString('latin1').replace(/\0+$/, ''))
  const local = a.registerMemory(Buffer.alloc(N * 8192), { access: [...access.access] })
  const remote = serverMr.region()
  await Promise.all(clients.map(async (c, i) => {
    const qp = c.qp
    const src = local.slice(i * 8192, 4096)
    Buffer.from(src.bytes.buffer, src.bytes.byteOffset, 4096).fill(0x41 + i)
    await qp.write(src, { addr: remote.addr + i * 8192, rkey: remote.rkey, length: 4096 })
    const back = local.slice(i * 8192 + 4096, 4096)
    await qp.read(back, { addr: remote.addr + i * 8192, rkey: remote.rkey, length: 4096 })
    const old = local.slice(i * 8192 + 4096 - 8, 8)
    await qp.fetchAndAdd(old, { addr: remote.addr + i * 8192 + 4096, rkey: remote.rkey, length: 8 }, BigInt(i + 1))
    const msg = local.slice(i * 8192 + 2048, 16)
    msg.bytes.set(Buffer.from(`hello from ${i}`.padEnd(16, '.')))
    await qp.send(msg)
  }))
  await Promise.all(received)
  const verified = clients.map((_, i) => {
    const back = Buffer.from(local.bytes.subarray(i * 8192 + 4096, i * 8192 + 8192))
    const added = Buffer.from(serverMr.bytes.subarray(i * 8192 + 4096, i * 8192 + 4104)).readBigUInt64LE(0)
    return back.every((x) => x === 0x41 + i) && added === BigInt(i + 1)
  })
  // Which server QP got which message (accept order need not be connect order).
  const messages = received.map((_, i) => Buffer.from(serverRecv.bytes.subarray(i * 256, i * 256 + 16)).toString('latin1')).sort()
  const stats = clients.map((c) => ({ qpn: c.qp.qpn, ...c.qp.stats.snapshot() }))
  const handles = a.handles
  // Half are ended by the client, half by the server.
  const ends = await Promise.all(clients.map(async (c, i) => {
    const s = servers.find((x) => x.remote.port === c.local.port)!
    if (i % 2 === 0) await c.disconnect()
    else await s.disconnect()
    const [ci, si] = await Promise.all([c.disconnected, s.disconnected])
    return `${ci.by}/${si.by}`
  }))
  for (const c of [...clients, ...servers]) await c.qp.close()
  listener.close()
  local.deregister()
  serverMr.deregister()
  serverRecv.deregister()
  return {
    requests, repData, consumerRej, noListener, verified, messages, ends,
    stats: stats.map((s) => ({ qpn: s.qpn, bytesSent: s.bytesSent, bytesReceived: s.bytesReceived, opsCompleted: s.opsCompleted, errors: s.errors })),
    qpsWhileConnected: handles.qps, connectionsLeft: cmA.connectionCount + cmB.connectionCount,
  }
}

async function family(fam: 4 | 6): Promise<void> {
  const me = fam === 4 ? '10.77.0.2' : 'fd77::2'
  const host = fam === 4 ? '10.77.0.1' : 'fd77::1'
  const ctx = await createContext({ provider: verbs({ device: 'rxe2', gidIndex: fam === 4 ? 1 : 2 }) })
  const cm = createCm(ctx)
  await part(`rping-s-v${fam}`, async () => {
    const server = rping(['-s', '-a', me, '-p', String(7500 + fam), '-v', '-V', '-C', String(COUNT)])
    const result = await rpingClient(ctx, cm, { host: me, port: 7500 + fam, count: COUNT, connectTimeoutMs: 60_000 })
    const r = await server.done
    return { result, rping: r }
  })
  await part(`rping-c-v${fam}`, async () => {
    const { options, state } = rpingListenOptions(ctx, 7510 + fam)
    const listener = cm.listen(options)
    const served = rpingServer(listener, state)
    const client = rpingClientProcess(['-c', '-a', me, '-p', String(7510 + fam), '-v', '-V', '-C', String(COUNT)])
    const [result, r] = await Promise.all([served, client])
    listener.close()
    return { result, rping: r, expected: Array.from({ length: COUNT }, (_, i) => `ping data: ${pingData(i, 64).subarray(0, 63).toString('latin1')}`) }
  })
  await part(`qps-v${fam}`, async () => {
    const other = await createContext({ provider: verbs({ device: 'rxe2', gidIndex: fam === 4 ? 1 : 2 }) })
    const cmB = createCm(other)
    try {
      return await severalQps(fam, ctx, cm, other, cmB, me)
    } finally {
      cmB.close()
      await other.close()
    }
  })
  await part(`cross-v${fam}`, async () => {
    // softroce's rping client (on the host) connects to us; then we connect to its rping server.
    const { options, state } = rpingListenOptions(ctx, 7520 + fam)
    const listener = cm.listen(options)
    console.log(`CM-CROSS-READY-v${fam}`)
    const served = await rpingServer(listener, state)
    listener.close()
    const client = await rpingClient(ctx, cm, { host, port: 7530 + fam, count: COUNT, connectTimeoutMs: 120_000 })
    return { served, client }
  })
  cm.close()
  await ctx.close()
}

// A wrong use is refused in words before anything reaches rdma_cm.
await part('bad-input', async () => {
  const ctx = await createContext({ provider: verbs({ device: 'rxe2', gidIndex: 1 }) })
  const cm = createCm(ctx)
  const codes: string[] = []
  for (const f of [() => cm.connect({ host: '10.77.0.2', port: 0 }), () => cm.connect({ host: 'not-an-address', port: 1 }), () => cm.connect({ host: '10.77.0.2', port: 7, privateData: new Uint8Array(57) })]) {
    try {
      await f()
      codes.push('no error')
    } catch (err) {
      codes.push(`${isRdmaError(err) ? (err as { code: string }).code : 'not an RdmaError'}: ${(err as Error).message}`)
    }
  }
  cm.close()
  await ctx.close()
  return { codes }
})
await family(4)
await family(6)
console.log('CM-GUEST-DONE')
// A part that timed out may leave work pending: end here.
process.exit(0)
