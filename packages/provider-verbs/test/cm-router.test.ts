/**
 * Host tests of the rdma_cm event router (src/cm/cm-channel.ts) over a stand-in channel: events
 * reach their id's handler, a request's events wait until the listener takes it, and a failure
 * event rejects a wait with rdma_cm's event and status in words.
 */
import { describe, expect, it } from 'vitest'
import { isRdmaError } from '@rdma-session/core'
import { CmRouter, type CmEventHandler, type NativeCmChannel, type NativeCmParam } from '../src/cm/cm-channel.js'
import { RdmaCmError } from '../src/index.js'

const PARAM: NativeCmParam = { responderResources: 1, initiatorDepth: 1, qpNum: 0, retryCount: 7, rnrRetryCount: 7 }

function router(): { r: CmRouter; fire: (name: string, status: number, handle: number, listen?: number, data?: Uint8Array) => void; destroyed: number[] } {
  let emit: CmEventHandler = () => {}
  const destroyed: number[] = []
  const channel = { destroyId: (h: number) => void destroyed.push(h), close: () => {} } as unknown as NativeCmChannel
  const r = new CmRouter((onEvent) => {
    emit = onEvent
    return channel
  })
  return { r, destroyed, fire: (name, status, handle, listen = 0, data) => emit(name, status, handle, listen, data ?? null, PARAM) }
}

describe('CmRouter', () => {
  it('resolves a wait on the event it waits for and ignores events that are no answer', async () => {
    const { r, fire } = router()
    const p = r.next(3, 'RDMA_CM_EVENT_ADDR_RESOLVED', 'rdma-cm://10.0.0.2:7174')
    fire('RDMA_CM_EVENT_TIMEWAIT_EXIT', 0, 3)
    fire('RDMA_CM_EVENT_ADDR_RESOLVED', 0, 3)
    await expect(p).resolves.toMatchObject({ name: 'RDMA_CM_EVENT_ADDR_RESOLVED', handle: 3 })
  })

  it('a REJECTED rejects the wait with ERR_CONNECTION_REFUSED naming the event, the status and the REJ reason, with the private data', async () => {
    const { r, fire } = router()
    const p = r.next(4, 'RDMA_CM_EVENT_CONNECT_RESPONSE', 'rdma-cm://10.0.0.2:7174')
    fire('RDMA_CM_EVENT_REJECTED', 28, 4, 0, Buffer.from('go away'))
    const err = await p.catch((e: unknown) => e) as Error & { code: string; details: Record<string, unknown> }
    expect(isRdmaError(err)).toBe(true)
    expect(err.code).toBe('ERR_CONNECTION_REFUSED')
    expect(err.message).toBe('rdma_cm: RDMA_CM_EVENT_REJECTED status 28 (consumer defined (the application rejected it)) connecting to rdma-cm://10.0.0.2:7174')
    expect(err.details).toMatchObject({ event: 'RDMA_CM_EVENT_REJECTED', status: 28, rejReason: 28, target: 'rdma-cm://10.0.0.2:7174' })
    expect(Buffer.from(err.details.privateData as Uint8Array).toString()).toBe('go away')
  })

  it('UNREACHABLE rejects with ERR_RDMA_CM and the errno name', async () => {
    const { r, fire } = router()
    const p = r.next(5, 'RDMA_CM_EVENT_CONNECT_RESPONSE', 'rdma-cm://[fd00::2]:1')
    fire('RDMA_CM_EVENT_UNREACHABLE', -110, 5)
    const err = await p.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RdmaCmError)
    expect((err as RdmaCmError).code).toBe('ERR_RDMA_CM')
    expect((err as RdmaCmError).message).toBe('rdma_cm: RDMA_CM_EVENT_UNREACHABLE status -110 (ETIMEDOUT) connecting to rdma-cm://[fd00::2]:1')
  })

  it("a connection request goes to onRequest; its id's events wait until a handler is set, then arrive in order", () => {
    const { r, fire, destroyed } = router()
    const requests: number[] = []
    r.onRequest = (e) => void requests.push(e.handle)
    fire('RDMA_CM_EVENT_CONNECT_REQUEST', 0, 9, 1)
    fire('RDMA_CM_EVENT_ESTABLISHED', 0, 9)
    fire('RDMA_CM_EVENT_DISCONNECTED', 0, 9)
    fire('RDMA_CM_EVENT_DISCONNECTED', 0, 77) // an id nobody knows: dropped
    expect(requests).toEqual([9])
    const seen: string[] = []
    r.handle(9, (e) => void seen.push(e.name))
    expect(seen).toEqual(['RDMA_CM_EVENT_ESTABLISHED', 'RDMA_CM_EVENT_DISCONNECTED'])
    r.destroy(9)
    fire('RDMA_CM_EVENT_TIMEWAIT_EXIT', 0, 9)
    expect(seen).toHaveLength(2)
    expect(destroyed).toEqual([9])
  })
})
