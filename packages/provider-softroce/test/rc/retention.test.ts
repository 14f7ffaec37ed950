/**
 * Memory a QP holds after its WRs complete: a retired send WQE (with the views of the buffers
 * it sent from) must not stay referenced by the send queue. Checked with weak references to the
 * source buffers and a forced garbage collection.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, expect, it } from 'vitest'
import { connect, openPair, takeCompletions, type Pair } from './harness.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

let pair: Pair | null = null
afterEach(async () => {
  await pair?.close()
  pair = null
})

it('completed send WQEs do not keep their source buffers alive', async () => {
  pair = await openPair()
  const { qa, qb } = connect(pair, { caps: { maxSendWr: 1024, maxRecvWr: 1024 } })
  const sink = pair.b.registerMemory(Buffer.alloc(64))
  const n = 600
  const sources: WeakRef<ArrayBuffer>[] = []
  for (let i = 0; i < n; i++) {
    // Each SEND from a buffer of its own, deregistered once its WR completed.
    const buf = Buffer.alloc(64, i)
    sources.push(new WeakRef(buf.buffer))
    const mr = pair.a.registerMemory(buf)
    const recv = qb.recv(sink.slice(0, 64))
    qa.postSend({ wrId: i, opcode: 'SEND', sgList: [mr.slice(0, 64)], signaled: true })
    await takeCompletions(qa.sendCq, 1)
    await recv
    mr.deregister()
  }
  await new Promise((r) => setImmediate(r))
  gc()
  const alive = sources.filter((w) => w.deref() !== undefined).length
  // The last few may still be reachable from locals or the last packet; hundreds mean the queue keeps them.
  expect(alive).toBeLessThan(10)
})
