// Directory benchmarks (needs `pnpm build` and the etcd binary; starts its own etcd on loopback):
//  1. connect by URL vs look up + connect by name (provider-mock contexts, ws control plane, identity auth);
//  2. N simulated hosts (leases from a few clients) registering and watched: registration rate,
//     watch latency for hosts leaving (revoked, and SIGKILL-style expiry), etcd CPU time and RSS.
// Usage: node bench/run.mjs [hosts=1000] [clients=4]
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createContext, generateIdentity } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { openDirectory } from '../dist/index.js'

const HOSTS = Number(process.argv[2] ?? 1000)
const CLIENTS = Number(process.argv[3] ?? 4)

const freePort = () => new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)) }) })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] }
const fmt = (x) => x.toFixed(2)

async function startEtcd() {
  const dir = mkdtempSync(join(tmpdir(), 'rdma-dir-bench-'))
  const cp = await freePort(), pp = await freePort()
  const proc = spawn('etcd', ['--data-dir', dir, '--listen-client-urls', `http://127.0.0.1:${cp}`, '--advertise-client-urls', `http://127.0.0.1:${cp}`, '--listen-peer-urls', `http://127.0.0.1:${pp}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${pp}`, '--initial-cluster', `default=http://127.0.0.1:${pp}`, '--log-level', 'warn'], { stdio: 'ignore' })
  for (let i = 0; i < 200; i++) {
    try { if ((await (await fetch(`http://127.0.0.1:${cp}/health`)).json()).health === 'true') break } catch {}
    await sleep(50)
  }
  const stat = () => {
    const f = readFileSync(`/proc/${proc.pid}/stat`, 'utf8').split(') ')[1].split(' ')
    const ticks = Number(f[11]) + Number(f[12])
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1])
    return { cpuMs: ticks * 10, rssMiB: rss / 1024 }
  }
  return { url: `etcd://127.0.0.1:${cp}`, stat, stop: () => { proc.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }) } }
}

const etcd = await startEtcd()
try {
  // ---- 1. connect by name vs by URL
  {
    const fabric = new MockFabric()
    const server = await createContext({ provider: mock({ fabric }) })
    const client = await createContext({ provider: mock({ fabric }) })
    const sId = generateIdentity(), cId = generateIdentity()
    const listener = await server.listen({ port: 0, auth: { identity: sId.privateKey, trusted: [cId.publicKey] } })
    const hostDir = await openDirectory({ url: etcd.url, namespace: 'bench1' })
    await hostDir.register({ name: 'server', identity: sId.privateKey, urls: { ws: [listener.url] } })
    const dir = await openDirectory({ url: etcd.url, namespace: 'bench1' })
    const auth = { identity: cId.privateKey, trusted: [sId.publicKey] }
    const byUrl = [], byName = [], lookups = []
    for (let i = 0; i < 10; i++) await (await client.connect(listener.url, { auth })).close() // warm up
    for (let i = 0; i < 100; i++) {
      let t = performance.now()
      const s1 = await client.connect(listener.url, { auth })
      byUrl.push(performance.now() - t)
      await s1.close()
      t = performance.now()
      const s2 = await dir.connect(client, 'dir://server', { auth })
      byName.push(performance.now() - t)
      await s2.close()
      t = performance.now()
      await dir.lookup('server')
      lookups.push(performance.now() - t)
    }
    console.log(`connect by URL:            p50 ${fmt(pct(byUrl, 50))} ms  p99 ${fmt(pct(byUrl, 99))} ms`)
    console.log(`look up + connect by name: p50 ${fmt(pct(byName, 50))} ms  p99 ${fmt(pct(byName, 99))} ms`)
    console.log(`lookup alone (etcd):       p50 ${fmt(pct(lookups, 50))} ms  p99 ${fmt(pct(lookups, 99))} ms`)
    await dir.close(); await hostDir.close(); await client.close(); await server.close()
  }

  // ---- 2. many hosts
  {
    const before = etcd.stat()
    const watcher = await openDirectory({ url: etcd.url, namespace: 'bench2' })
    const left = new Map()
    let joined = 0
    await watcher.watch((ev) => { if (ev.type === 'join') joined++; if (ev.type === 'leave') left.set(ev.name, performance.now()) }, { initial: false })
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => openDirectory({ url: etcd.url, namespace: 'bench2', etcd: { timeoutMs: 5000 } })))
    const ids = Array.from({ length: 16 }, () => generateIdentity())
    const regs = []
    const t0 = performance.now()
    const per = Math.ceil(HOSTS / CLIENTS)
    await Promise.all(clients.map(async (d, c) => {
      for (let i = c * per; i < Math.min(HOSTS, (c + 1) * per); i++) {
        regs[i] = await d.register({ name: `sim-${i}`, identity: ids[i % 16].privateKey, urls: { ws: [`ws://10.0.${i >> 8}.${i & 255}:7471`] }, roce: [{ address: `10.0.${i >> 8}.${i & 255}`, port: 4791 }], labels: { rack: `r${i % 20}` }, ttlMs: 10_000 })
      }
    }))
    const regMs = performance.now() - t0
    while (joined < HOSTS) await sleep(10)
    console.log(`registered ${HOSTS} hosts from ${CLIENTS} clients in ${fmt(regMs)} ms: ${Math.round(HOSTS / (regMs / 1000))} hosts/s (each: lease grant + create txn)`)
    let t = performance.now()
    const all = await watcher.list()
    console.log(`list all ${all.length} hosts (verify each): ${fmt(performance.now() - t)} ms; by label: ${(await watcher.list({ labels: { rack: 'r3' } })).length} hosts`)
    // 100 hosts leave explicitly (lease revoked): watch latency.
    const gone = []
    for (let i = 0; i < 100; i++) { const at = performance.now(); await regs[i].close(); gone.push([`sim-${i}`, at]) }
    while (gone.some(([n]) => !left.has(n))) await sleep(5)
    const lat = gone.map(([n, at]) => left.get(n) - at)
    console.log(`watch latency for a host leaving (lease revoked): p50 ${fmt(pct(lat, 50))} ms  p99 ${fmt(pct(lat, 99))} ms`)
    // One client "dies" (keepalives stop): its hosts expire with their leases.
    const dying = clients[CLIENTS - 1]
    const dyingHosts = regs.filter((r, i) => i >= (CLIENTS - 1) * per && r.state === 'live').map((r) => r.name)
    t = performance.now()
    await dying.abandon()
    while (dyingHosts.some((n) => !left.has(n))) await sleep(20)
    const exp = dyingHosts.map((n) => left.get(n) - t)
    console.log(`${dyingHosts.length} hosts of a dead client (lease 10 s) seen leaving after: first ${fmt(Math.min(...exp))} ms, last ${fmt(Math.max(...exp))} ms`)
    const after = etcd.stat()
    console.log(`etcd: CPU ${after.cpuMs - before.cpuMs} ms during part 2; RSS ${fmt(after.rssMiB)} MiB (before ${fmt(before.rssMiB)} MiB)`)
    for (const d of clients.slice(0, -1)) await d.close()
    await watcher.close()
  }
} finally {
  etcd.stop()
}
process.exit(0)
