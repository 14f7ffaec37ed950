// Runs INSIDE the rxe-vm guest (started by guest-vs-rxe.mjs on the host, with the repository shared
// at /mnt/host and the host's node): 1 MiB RDMA WRITE throughput of the kernel's rxe, perftest's
// `ib_write_bw -s 1048576` with server and client on rxe0 (rxe's loopback), and of softroce, RC
// WRITEs of 1 MiB between this process and a peer process over the guest's loopback on the default
// (best available) socket path, alternated round by round. rxe runs at two path MTUs: 1024, what
// a 1500-byte NIC gives it (eth0 as booted), and 4096 (eth0 at 9000 bytes), softroce's path MTU.
// CPU: the guest's busy time over all vCPUs from /proc/stat (rxe does its work in softirqs and
// kernel threads, which no process's own counters show), per GiB moved.
// Also the cost of a clock read (the clocksource decides it: TCG's default HPET makes each one an
// emulated MMIO access) and of a 4 KiB packet's CRC-32 by zlib and by the helper's carry-less
// multiplication (which TCG emulates). Prints a table and one `GUEST-RESULT {...}` line.   Env: BENCH_GUEST_MIB (MiB per measurement,
// 32), BENCH_GUEST_ROUNDS (3).
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'
import { crc32 as zlibCrc32 } from 'node:zlib'
import { createContext } from '@rdma-session/core'
import { nativeHelperStatus, softroce } from '@rdma-session/provider-softroce'
import { median } from '../measure.mjs'
import { connectToPeer, localQps, PeerProcess } from './peer-process.mjs'
import { pipelinedWrites } from './write-loop.mjs'

const MiB = 1 << 20
const SIZE = MiB
const MESSAGES = Number(process.env.BENCH_GUEST_MIB ?? 32)
const ROUNDS = Number(process.env.BENCH_GUEST_ROUNDS ?? 3)
const USER_HZ = 100
const PERFTEST_PORT = 18515

/** Busy seconds of all CPUs so far (everything in /proc/stat's cpu line but idle and iowait). */
function busySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const [user, nice, system, , , irq, softirq, steal = 0] = f
  return (user + nice + system + irq + softirq + steal) / USER_HZ
}

function run(cmd, args) {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    c.stderr.on('data', (d) => (out += d))
    c.on('error', (err) => resolve({ code: -1, out: String(err) }))
    c.on('close', (code) => resolve({ code, out }))
  })
}

/** Whether something listens on TCP `port` (IPv4 or IPv6), from /proc/net/tcp*. */
function listening(port) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`
  return ['/proc/net/tcp', '/proc/net/tcp6'].some((f) => {
    try {
      return readFileSync(f, 'utf8').split('\n').some((l) => {
        const c = l.trim().split(/\s+/)
        return c[1]?.endsWith(hex) && c[3] === '0A'
      })
    } catch {
      return false
    }
  })
}

async function waitFor(what, cond, ms) {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(20)
  }
}

/** eth0's MTU, which sets rxe0's active path MTU (1500 -> 1024, 9000 -> 4096). */
async function setRxeMtu(mtu) {
  const r = await run('ip', ['link', 'set', 'eth0', 'mtu', mtu === 4096 ? '9000' : '1500'])
  if (r.code !== 0) throw new Error(`ip link set eth0 mtu: ${r.out}`)
  const active = async () => /active_mtu:\s*(\d+)/.exec((await run('ibv_devinfo', ['-d', 'rxe0'])).out)?.[1]
  await waitFor(`rxe0 active_mtu ${mtu}`, async () => (await active()) === String(mtu), 60_000)
}

let port = PERFTEST_PORT
/** ib_write_bw server and client on rxe0, 1 MiB messages: bytes/s (perftest's BW average) and guest CPU s. */
async function rxeWriteBw(mtu) {
  await setRxeMtu(mtu)
  const p = String(port++)
  const common = ['-d', 'rxe0', '-x', '1', '-s', String(SIZE), '-n', String(MESSAGES), '-p', p, '-F']
  const cpu0 = busySeconds()
  const server = run('ib_write_bw', common)
  await waitFor(`ib_write_bw's server on TCP ${p}`, () => listening(Number(p)), 120_000)
  const client = await run('ib_write_bw', [...common, '127.0.0.1'])
  const s = await server
  const cpu = busySeconds() - cpu0
  // the result row: #bytes #iterations BW peak[MB/sec] BW average[MB/sec] MsgRate[Mpps]
  const row = client.out.split('\n').map((l) => l.trim().split(/\s+/)).find((c) => c[0] === String(SIZE) && c.length >= 5 && c.slice(1, 5).every((x) => Number.isFinite(Number(x))))
  if (client.code !== 0 || s.code !== 0 || row === undefined) throw new Error(`ib_write_bw (mtu ${mtu}) failed: client exit ${client.code}, server exit ${s.code}\n${client.out}\n${s.out}`)
  // perftest's MB is 2^20 bytes
  return { rate: Number(row[3]) * MiB, cpu }
}

/** A local softroce context and a peer process on the guest's loopback, QP connected, path MTU 4096. */
async function openSoftroce() {
  const peer = new PeerProcess()
  const ctx = await createContext({ provider: softroce({ port: 0 }) })
  const opened = await peer.call('open', { regionBytes: 8 * MiB, qps: [{}] })
  const [qp] = localQps(ctx, 1)
  // QP timeout 18 (1 s): TCG stalls a process for long stretches on a loaded host, and a shorter
  // ACK timeout then measures spurious go-back-N rather than the stack
  await connectToPeer(peer, ctx, [qp], opened, { timeout: 18 })
  const src = ctx.registerMemory(Buffer.alloc(8 * MiB, 7))
  return { peer, ctx, qp, src, opened }
}

async function softroceWrites(p) {
  const cpu0 = busySeconds()
  const u0 = process.cpuUsage()
  const { bytes, ms } = await pipelinedWrites({ qp: p.qp, src: p.src, remoteAddr: p.opened.addr, rkey: p.opened.rkey, size: SIZE, n: MESSAGES, depth: 4, slots: 8 })
  const u = process.cpuUsage(u0)
  return { rate: bytes / (ms / 1000), cpu: busySeconds() - cpu0, senderUser: u.user / 1e6, senderSystem: u.system / 1e6 }
}

/** Microseconds per call of `fn`, the median of 3 batches of `n`. */
function usPer(fn, n) {
  const t = []
  for (let b = 0; b < 3; b++) {
    const t0 = performance.now()
    for (let i = 0; i < n; i++) fn()
    t.push(((performance.now() - t0) * 1000) / n)
  }
  return median(t)
}

const helper = nativeHelperStatus()
const clocksource = readFileSync('/sys/devices/system/clocksource/clocksource0/current_clocksource', 'utf8').trim()
const packet = Buffer.alloc(4112, 0x5a)
const costs = { clockReadUs: usPer(() => performance.now(), 2000), zlibCrc4KiBUs: usPer(() => zlibCrc32(packet), 200) }
if (helper.path !== undefined && helper.helper === 'loaded') {
  const addon = createRequire(import.meta.url)(helper.path)
  if (typeof addon.crc32 === 'function') costs.nativeCrc4KiBUs = usPer(() => addon.crc32(packet, 0), 200)
}
const sr = await openSoftroce()
const io = sr.ctx.device.diagnostics.batchedIo
const path = io === undefined ? 'node:dgram both ways' : `send ${io.send}, receive ${io.receive}`
console.log(`guest: clocksource ${clocksource}: a clock read ${costs.clockReadUs.toFixed(2)} µs; CRC-32 of 4 KiB: zlib ${costs.zlibCrc4KiBUs.toFixed(1)} µs, helper ${costs.nativeCrc4KiBUs?.toFixed(1) ?? '-'} µs`)
console.log(`guest: ${ROUNDS} rounds of ${MESSAGES} x 1 MiB; softroce path: ${path}; helper ${helper.helper}, ICRCs by ${helper.icrcEngine}${helper.why ? ` (${helper.why})` : ''}`)

const kinds = {
  'rxe mtu 1024': () => rxeWriteBw(1024),
  'rxe mtu 4096': () => rxeWriteBw(4096),
  softroce: () => softroceWrites(sr),
}
const samples = Object.fromEntries(Object.keys(kinds).map((k) => [k, { rate: [], cpu: [] }]))
const c0 = sr.ctx.device.counters.snapshot()
await softroceWrites(sr) // warm-up: JIT, buffers
const order = Object.keys(kinds)
/** The softroce sender's own user and system seconds per measurement (where its time goes). */
const split = []
for (let r = 0; r < ROUNDS; r++) {
  // rotate the order each round, so no kind always runs first or right after another
  for (let i = 0; i < order.length; i++) {
    const k = order[(i + r) % order.length]
    const m = await kinds[k]()
    samples[k].rate.push(m.rate)
    samples[k].cpu.push(m.cpu / ((MESSAGES * SIZE) / 2 ** 30))
    if (m.senderUser !== undefined) split.push({ user: m.senderUser, system: m.senderSystem })
    console.log(`  round ${r + 1} ${k.padEnd(13)} ${(m.rate / 1e6).toFixed(1)} MB/s, guest CPU ${m.cpu.toFixed(2)} s${m.senderUser === undefined ? '' : ` (softroce's sender process: user ${m.senderUser.toFixed(2)} s, system ${m.senderSystem.toFixed(2)} s)`}`)
  }
}
const c1 = sr.ctx.device.counters.snapshot()
const result = {
  rounds: ROUNDS,
  messages: MESSAGES,
  path,
  helper: helper.helper,
  icrcEngine: helper.icrcEngine,
  clocksource,
  costs,
  senderUserShare: split.reduce((a, x) => a + x.user, 0) / Math.max(1e-9, split.reduce((a, x) => a + x.user + x.system, 0)),
  retransmits: c1.retransmits - c0.retransmits,
  timeouts: c1.timeouts - c0.timeouts,
  kinds: Object.fromEntries(Object.entries(samples).map(([k, s]) => [k, { rate: median(s.rate), min: Math.min(...s.rate), max: Math.max(...s.rate), cpuPerGiB: median(s.cpu) }])),
}
console.log(`GUEST-RESULT ${JSON.stringify(result)}`)
await sr.ctx.close()
await sr.peer.close()
