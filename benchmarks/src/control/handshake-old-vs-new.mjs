// Control-plane handshake and join time of this build against another build of the SDK, in one
// run (issue 20: the Noise handshake and PASETO join tokens against the hand-written ones).
// BENCH_BASELINE is the root of a built checkout of the baseline commit, for example
//   git worktree add /tmp/base <commit> && (cd /tmp/base && pnpm install && pnpm build)
//   BENCH_BASELINE=/tmp/base node benchmarks/src/control/handshake-old-vs-new.mjs
// Each side runs its own core and provider-mock (one fabric per side), both ends in this process on
// 127.0.0.1: `dial` is a connection plus the handshake (the close is not timed), `join` is ctx.join() with a join token
// (connection, handshake, token check, one QP). Without BENCH_BASELINE only this build is measured.
import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { fmt, median, report } from '../measure.mjs'

const N = Number(process.env.BENCH_HANDSHAKE_N ?? 50)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const psk = Buffer.alloc(32, 7)
const here = join(import.meta.dirname, '..', '..', '..')

async function load(root) {
  const core = await import(pathToFileURL(join(root, 'packages/core/dist/index.js')).href)
  const mock = await import(pathToFileURL(join(root, 'packages/provider-mock/dist/index.js')).href)
  return { core, mock }
}

/** One side's contexts: a listener (PSK and identities), a holder with a session, a joiner. */
async function side({ core, mock: m }) {
  const fabric = new m.MockFabric()
  const make = (port) => core.createContext({ provider: m.mock({ fabric, address: '127.0.0.1', port }) })
  const [server, holder, joiner] = await Promise.all([make(5000), make(5001), make(5002)])
  const sid = generateKeyPairSync('ed25519')
  const cid = generateKeyPairSync('ed25519')
  const listener = await server.listen({ port: 0, auth: { psk, identity: sid.privateKey, trusted: [cid.publicKey] }, rateLimit: { qpsPerSecond: 1e9, burst: 1e9 } })
  const url = listener.url
  const held = await holder.connect(url, { auth: { psk }, params: { encryption: 'aes-256-gcm' }, qps: [{}] })
  const auths = { psk: { psk }, identity: { identity: cid.privateKey, trusted: [sid.publicKey] } }
  return {
    dial: (mode) => holder.dial(url, { auth: auths[mode] }),
    join: async () => {
      const s = await joiner.join(url, { auth: { psk }, token: held.createJoinToken({ maxQps: 1 }) })
      await s.addQps([{}])
      return s
    },
    close: async () => {
      await held.close()
      await Promise.all([holder.close(), joiner.close()])
      await server.close()
    },
  }
}

/** µs per call of `fn`, timing only the calls (`cleanup` of what each made runs untimed: a joiner joins a session once at a time). */
async function timed(n, fn, cleanup = async () => undefined) {
  let ms = 0
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    const made = await fn()
    ms += performance.now() - t0
    await cleanup(made)
  }
  return { us: (ms * 1000) / n }
}

const sides = { new: await side(await load(here)) }
if (process.env.BENCH_BASELINE) sides.old = await side(await load(process.env.BENCH_BASELINE))
const names = Object.keys(sides)
const runs = Object.fromEntries(names.map((n) => [n, { psk: [], identity: [], join: [] }]))
for (let round = -1; round < ROUNDS; round++) {
  // One warm-up round (-1); sides alternate which goes first.
  for (const name of round % 2 === 0 ? names : [...names].reverse()) {
    const s = sides[name]
    const p = await timed(N, () => s.dial('psk'), (ch) => ch.close('bench'))
    const i = await timed(N, () => s.dial('identity'), (ch) => ch.close('bench'))
    const j = await timed(N, s.join, (joined) => joined.close())
    if (round < 0) continue
    runs[name].psk.push(p.us)
    runs[name].identity.push(i.us)
    runs[name].join.push(j.us)
  }
}
const lines = []
for (const name of names) {
  const r = runs[name]
  lines.push(`${name === 'new' ? 'this build' : `baseline ${process.env.BENCH_BASELINE}`}: dial+handshake PSK ${fmt(median(r.psk), 1)} µs, Ed25519 identities ${fmt(median(r.identity), 1)} µs; ctx.join() with a token ${fmt(median(r.join), 1)} µs`)
}
if (sides.old) {
  const ratio = (k) => fmt(median(runs.new[k]) / median(runs.old[k]))
  lines.push(`this build / baseline: PSK handshake ${ratio('psk')}x, identity handshake ${ratio('identity')}x, join ${ratio('join')}x (median of ${ROUNDS} rounds of ${N})`)
}
report('control plane: handshake and join time, this build vs a baseline build (ws, mock both ends)', lines, { ok: true, text: 'handshake and join times (reported)' })
for (const s of Object.values(sides)) await s.close()
