import { afterEach, describe, expect, it, vi } from 'vitest'
import { microtaskRunner } from '../src/index.js'

describe('microtaskRunner', () => {
  afterEach(() => vi.restoreAllMocks())

  it('runs the function in a microtask, in order with queueMicrotask, before any macrotask', async () => {
    const order: string[] = []
    const soon = microtaskRunner(() => order.push('runner'))
    setImmediate(() => order.push('immediate'))
    queueMicrotask(() => order.push('before'))
    soon()
    queueMicrotask(() => order.push('after'))
    order.push('sync')
    await new Promise((resolve) => setImmediate(resolve))
    expect(order).toEqual(['sync', 'before', 'runner', 'after', 'immediate'])
    soon()
    soon()
    await Promise.resolve()
    expect(order.filter((x) => x === 'runner')).toHaveLength(3)
  })

  it('an exception is rethrown from a queueMicrotask callback (so it reaches uncaughtException), not left as a rejection', async () => {
    const boom = new Error('boom')
    const rethrown: (() => void)[] = []
    vi.spyOn(globalThis, 'queueMicrotask').mockImplementation((cb) => void rethrown.push(cb))
    const onRejection = vi.fn()
    process.on('unhandledRejection', onRejection)
    try {
      microtaskRunner(() => {
        throw boom
      })()
      await new Promise((resolve) => setImmediate(resolve))
    } finally {
      process.off('unhandledRejection', onRejection)
    }
    expect(onRejection).not.toHaveBeenCalled()
    expect(rethrown).toHaveLength(1)
    expect(() => rethrown[0]!()).toThrow(boom)
  })
})
