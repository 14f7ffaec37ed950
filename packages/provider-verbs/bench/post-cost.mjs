#!/usr/bin/env node
// Runs inside the rxe guest (tools/rxe-vm/run.sh -n -s <repo> "cd packages/provider-verbs && node bench/post-cost.mjs [N]"):
// the cost of one call of each post and poll path, in µs (means over N calls; compare within a run).
import { loopbackPair } from './loopback-pair.mjs'

const N = Number(process.argv[2] ?? 2000)
const { a, b, mra, mrb, qa, qb } = await loopbackPair()
const pa = qa.provider, ca = qa.sendCq.provider
const ia = new Uint8Array(8)
const wr = { wrId: 1, opcode: 'RDMA_WRITE', sgList: [], signaled: false, remoteAddr: mrb.addr, rkey: mrb.rkey, inlineData: ia }
const wrS = { ...wr, signaled: true }

function time(name, fn, n = N) {
  for (let i = 0; i < 2000; i++) fn(i)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) fn(i)
  const us = ((performance.now() - t0) * 1000) / n / (name.includes('x32') ? 32 : 1)
  console.log(`${name.padEnd(40)} ${us.toFixed(2)} µs`)
}
let sink = 0
time('performance.now()', () => { sink += performance.now() })
time('js call', (i) => { sink += Math.imul(i, 3) })
time('native cq.poll(0)', () => { sink += ca.native.poll(0) })
time('provider cq.poll(16) empty', () => { sink += ca.poll(16).length })
const drain = () => { while (ca.native.poll(64) > 0); }
const sig = (i, post) => { post((i & 31) === 31); if ((i & 31) === 31) drain() }
pa.postSend(wrS); drain()
time('native qp.postSend(inline) 1/32 signaled', (i) => sig(i, (s) => { pa.native && (pa.device.buffers.u32[9] = s ? 1 : 0); pa.native.postSend(ia) }))
time('provider postSend inline 1/32 signaled', (i) => sig(i, (s) => pa.postSend(s ? wrS : wr)))
if (typeof pa.prepareSend === 'function') {
  const h = pa.prepareSend(wr), hs = pa.prepareSend(wrS)
  time('provider postPrepared 1/32 signaled', (i) => sig(i, (s) => pa.postPrepared(s ? hs : h)))
  const bnd = pa.device.binding
  time('binding.postPrepared raw 1/32 signaled', (i) => sig(i, (s) => bnd.postPrepared(s ? hs.handle : h.handle)))
  const list = Array.from({ length: 32 }, (_, k) => (k === 31 ? hs : h))
  time('provider postPreparedList x32 (per WR)', () => { pa.postPreparedList(list); drain() }, N / 32)
  const ra = ca.records
  time('provider cq.pollRecords(16) empty', () => { sink += ca.pollRecords(16) })
}
await new Promise((r) => setTimeout(r, 50))
drain()
console.log('sink', sink > 0)
await a.close(); await b.close()
