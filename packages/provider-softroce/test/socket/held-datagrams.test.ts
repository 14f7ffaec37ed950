// HeldDatagrams: the receive-side priority queue of held-back datagrams and its copy slab.
import { performance } from 'node:perf_hooks'
import { expect, it } from 'vitest'
import { HeldDatagrams } from '../../src/socket/held-datagrams.js'

function collect(): { seen: string[]; handler: (d: Buffer, a: string, p: number) => void } {
  const seen: string[] = []
  return { seen, handler: (d, a, p) => seen.push(`${d.toString('hex')}@${a}:${p}`) }
}

it('copies views the next read overwrites, hands them out in arrival order, and keeps non-copied buffers as they are', () => {
  const held = new HeldDatagrams()
  const readSlab = Buffer.alloc(8)
  readSlab.write('aaaa', 0, 'hex')
  held.hold(readSlab.subarray(0, 2), '10.0.0.1', 1, true)
  readSlab.write('bbbb', 0, 'hex') // the next batch overwrites the read slab
  held.hold(readSlab.subarray(0, 2), '10.0.0.2', 2, true)
  const own = Buffer.from('cc', 'hex')
  held.hold(own, '10.0.0.3', 3, false)
  expect(held.length).toBe(3)
  const { seen, handler } = collect()
  expect(held.handle(handler, Infinity)).toBe(false)
  expect(seen).toEqual(['aaaa@10.0.0.1:1', 'bbbb@10.0.0.2:2', 'cc@10.0.0.3:3'])
  expect(held.empty).toBe(true)
})

it('reuses its slab once drained, and starts a new one when a backlog fills it (older views stay intact)', () => {
  const held = new HeldDatagrams()
  const d = Buffer.alloc(4096)
  const views: Buffer[] = []
  held.hold(d.fill(1), 'a', 1, true)
  held.handle((v) => views.push(v), Infinity)
  held.hold(d.fill(2), 'a', 1, true)
  held.handle((v) => views.push(v), Infinity)
  // Drained in between: the second copy went to the start of the same slab.
  expect(views[1]!.buffer).toBe(views[0]!.buffer)
  expect(views[1]!.byteOffset).toBe(views[0]!.byteOffset)
  // 300 x 4 KiB held at once is more than one 1 MiB slab: each keeps its own bytes.
  for (let i = 0; i < 300; i++) held.hold(d.fill(i & 0xff), 'a', i, true)
  const firstBytes: number[] = []
  const buffers = new Set<ArrayBufferLike>()
  held.handle((v, _a, p) => {
    firstBytes.push(v[0]! === (p & 0xff) && v[4095]! === (p & 0xff) ? 1 : 0)
    buffers.add(v.buffer)
  }, Infinity)
  expect(firstBytes.every((x) => x === 1)).toBe(true)
  expect(buffers.size).toBe(2)
})

it('stops after its time budget (checked every 4 datagrams) and goes on where it stopped', () => {
  const held = new HeldDatagrams()
  for (let i = 0; i < 10; i++) held.hold(Buffer.from([i]), 'a', i, true)
  const ports: number[] = []
  // A budget already spent: 4 datagrams, then it stops.
  expect(held.handle((_d, _a, p) => ports.push(p), performance.now() - 1)).toBe(true)
  expect(ports).toEqual([0, 1, 2, 3])
  expect(held.length).toBe(6)
  expect(held.handle((_d, _a, p) => ports.push(p), Infinity)).toBe(false)
  expect(ports).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  held.hold(Buffer.from([1]), 'a', 1, true)
  held.clear()
  expect(held.empty).toBe(true)
})
