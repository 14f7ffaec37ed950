import { it } from 'vitest'
import { connect, openPair, pattern, register } from './harness.js'
for (const selectiveRepeat of [true, false]) for (const loss of [0, 0.01]) it(`probe ${selectiveRepeat} ${loss}`, async () => {
  const pair = await openPair({ impairment: { loss, seed: 3 }, windowBytes: 1 << 20, selectiveRepeat }, { windowBytes: 1 << 20, selectiveRepeat })
  const { qa } = connect(pair, { mtu: 4096 })
  const size = 32 << 20
  const ma = register(pair.a, size); const mb = register(pair.b, size)
  ma.bytes.set(pattern(size, 1))
  const t0 = performance.now()
  for (let off = 0; off < size; off += 1 << 20) await qa.write(ma.slice(off, 1 << 20), mb.region(off, 1 << 20))
  const ms = performance.now() - t0
  const c = pair.da.counters
  console.log(`SR=${selectiveRepeat} loss=${loss}: ${(size / ms / 1000).toFixed(1)} MB/s lost ${pair.da.impairment.stats.lost} retx ${c.retransmits} retxBytes/lostBytes ${(c.retransmittedBytes / (pair.da.impairment.stats.lost * 4096)).toFixed(2)} sacks ${c.sackNaksReceived} held ${pair.db.counters.outOfOrderBuffered} overflow ${pair.db.counters.reorderOverflows} timeouts ${c.timeouts}`)
  await pair.close()
}, 120_000)
