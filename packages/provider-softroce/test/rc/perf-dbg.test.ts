import dgram from 'node:dgram'
import { it } from 'vitest'
import { openPair, connect, register } from './harness.js'

async function rawBlast(total: number, size: number): Promise<number> {
  const a = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 })
  const b = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 })
  await new Promise<void>((r) => a.bind(0, '127.0.0.1', () => r()))
  await new Promise<void>((r) => b.bind(0, '127.0.0.1', () => r()))
  let got = 0
  const port = b.address().port
  const buf = Buffer.alloc(size)
  const t0 = performance.now()
  const done = new Promise<void>((r) => b.on('message', (m) => { got += m.length; if (got >= total * 0.9) r() }))
  let sent = 0
  while (sent < total) {
    for (let i = 0; i < 64 && sent < total; i++) { a.send(buf, port, '127.0.0.1'); sent += size }
    await new Promise((r) => setImmediate(r))
  }
  await Promise.race([done, new Promise((r) => setTimeout(r, 2000))])
  const dt = performance.now() - t0
  a.close(); b.close()
  return (got / dt) * 1000 / (1 << 20)
}

async function rawPingPong(n: number): Promise<number> {
  const a = dgram.createSocket('udp4'); const b = dgram.createSocket('udp4')
  await new Promise<void>((r) => a.bind(0, '127.0.0.1', () => r())); await new Promise<void>((r) => b.bind(0, '127.0.0.1', () => r()))
  const pa = a.address().port; const pb = b.address().port
  b.on('message', (m) => b.send(m, pa, '127.0.0.1'))
  const buf = Buffer.alloc(8)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await new Promise<void>((r) => { a.once('message', () => r()); a.send(buf, pb, '127.0.0.1') })
  const us = (performance.now() - t0) / n * 1000
  a.close(); b.close()
  return us
}

it('perf', async () => {
  for (let k = 0; k < 0; k++) console.log('raw blast 4096:', (await rawBlast(64 << 20, 4096 + 32)).toFixed(1), 'MiB/s')
  const p = await openPair()
  const { qa, qb } = connect(p, { mtu: 4096, caps: { maxSendWr: 64 } })
  const MiB = 1 << 20
  const ma = register(p.a, 16 * MiB); const mb = register(p.b, 16 * MiB)
  for (let round = 0; round < 1; round++) {
    const t0 = performance.now()
    const ops = []
    for (let j = 0; j < 4; j++) for (let i = 0; i < 16; i++) ops.push(qa.write(ma.slice(i * MiB, MiB), mb.region(i * MiB, MiB)))
    await Promise.all(ops)
    const dt = performance.now() - t0
    console.log(`RC WRITE 1 MiB x64: ${(64 / dt * 1000).toFixed(1)} MiB/s  retx ${p.da.counters.retransmits} timeouts ${p.da.counters.timeouts}`)
  }
  for (let k = 0; k < 2; k++) console.log('raw pingpong:', (await rawPingPong(2000)).toFixed(1), 'us')
  for (let k = 0; k < 3; k++) {
    const n = 2000
    const t0 = performance.now()
    const pend: Promise<unknown>[] = []
    for (let i = 0; i < n; i++) {
      const r = qb.recv(mb.slice(0, 64))
      const r2 = qa.recv(ma.slice(64, 64))
      pend.push(qa.send(ma.slice(0, 8)))
      await r
      pend.push(qb.send(mb.slice(64, 8)))
      await r2
      if (pend.length > 64) { await Promise.all(pend); pend.length = 0 }
    }
    await Promise.all(pend)
    console.log('RC SEND pingpong:', ((performance.now() - t0) / n * 1000).toFixed(1), 'us per round trip')
  }
  await p.close()
}, 120000)
