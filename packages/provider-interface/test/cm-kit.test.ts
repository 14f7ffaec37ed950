import { describe, expect, it } from 'vitest'
import {
  AccessFlag, CM_ALL_ACCESS, CmConnectionShell, CmListenerBase, QpState, checkCmBacklog, checkCmPort, checkCmPrivateData,
  cmQpToError, cmTarget, createCmQp, isRdmaError, type CmKitQp,
} from '../src/index.js'

function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return isRdmaError(err) ? err.code : 'not an RdmaError'
  }
  return undefined
}

class FakeQp implements CmKitQp {
  state: QpState = QpState.RESET
  readonly modified: object[] = []
  closed = 0
  failOn: QpState | null = null
  modify(attrs: { readonly state: QpState }): void {
    if (attrs.state === this.failOn) throw new Error(`no ${attrs.state}`)
    this.modified.push(attrs)
    this.state = attrs.state
  }
  async close(): Promise<void> {
    this.closed++
  }
}

describe('cm kit checks', () => {
  it('ports are 1..65535 integers (or from min), with the name of the argument', () => {
    expect(checkCmPort('listen port', 7471)).toBe(7471)
    expect(checkCmPort('p', 0, 0)).toBe(0)
    for (const bad of [0, 65536, 1.5, '7471', undefined]) expect(code(() => checkCmPort('listen port', bad))).toBe('ERR_INVALID_ARGUMENT')
    expect(() => checkCmPort('connect port', 70000)).toThrow('connect port must be 1..65535, got 70000')
  })

  it('a backlog is absent or a positive integer', () => {
    expect(code(() => checkCmBacklog(undefined))).toBeUndefined()
    expect(code(() => checkCmBacklog(1))).toBeUndefined()
    for (const bad of [0, -1, 2.5, '4']) expect(code(() => checkCmBacklog(bad))).toBe('ERR_INVALID_ARGUMENT')
  })

  it('private data: absent is empty, a Uint8Array up to max, else a clear error', () => {
    expect(checkCmPrivateData('private data', undefined, 56)).toHaveLength(0)
    const d = new Uint8Array(56)
    expect(checkCmPrivateData('private data', d, 56)).toBe(d)
    expect(() => checkCmPrivateData('private data', new Uint8Array(57), 56)).toThrow('rdma_cm private data is at most 56 bytes, got 57')
    expect(code(() => checkCmPrivateData('reject private data', [1, 2] as unknown as Uint8Array, 148))).toBe('ERR_INVALID_ARGUMENT')
  })

  it('targets bracket IPv6 hosts', () => {
    expect(cmTarget('10.0.0.1', 7471)).toBe('rdma-cm://10.0.0.1:7471')
    expect(cmTarget('fd00::1', 7471)).toBe('rdma-cm://[fd00::1]:7471')
  })
})

describe('cm kit listener and connection shell', () => {
  class Listener extends CmListenerBase<string> {
    closes = 0
    protected onClose(): void {
      this.closes++
    }
  }

  it('hands connections to accept() in order, whether accept comes first or not; close runs once', async () => {
    const l = new Listener()
    const first = l.accept()
    l.established('a')
    l.established('b')
    expect(await first).toBe('a')
    expect(await l.accept()).toBe('b')
    expect(l.closed).toBe(false)
    l.close()
    l.close()
    expect(l.closed).toBe(true)
    expect(l.closes).toBe(1)
  })

  it('the shell resolves disconnected with the first ending and names its peer', async () => {
    class Conn extends CmConnectionShell<{ by: string }> {
      end(by: string): void {
        this.resolveDisconnected({ by })
      }
      get peer(): string {
        return this.target
      }
    }
    const c = new Conn('active', { address: '::1', port: 1 }, { address: 'fd00::2', port: 7471 })
    expect(c.role).toBe('active')
    expect(c.peer).toBe('rdma-cm://[fd00::2]:7471')
    c.end('local')
    c.end('remote')
    expect(await c.disconnected).toEqual({ by: 'local' })
  })

  it('cmQpToError moves a live QP to ERR, leaves RESET/ERR alone and survives a closed QP', () => {
    cmQpToError(null)
    const qp = new FakeQp()
    cmQpToError(qp)
    expect(qp.modified).toEqual([])
    qp.state = QpState.RTS
    cmQpToError(qp)
    expect(qp.state).toBe(QpState.ERR)
    cmQpToError(qp)
    expect(qp.modified).toHaveLength(1)
    const closed = new FakeQp()
    closed.state = QpState.RTS
    closed.failOn = QpState.ERR
    expect(() => cmQpToError(closed)).not.toThrow()
  })

  it('createCmQp brings the QP to INIT with all access by default, runs prepare, and closes it when a step throws', async () => {
    const qp = new FakeQp()
    const prepared: FakeQp[] = []
    expect(createCmQp(() => qp, { prepare: (q) => prepared.push(q) }, { portNum: 1, pkeyIndex: 0 })).toBe(qp)
    expect(qp.modified).toEqual([{ state: QpState.INIT, accessFlags: CM_ALL_ACCESS, portNum: 1, pkeyIndex: 0 }])
    expect(prepared).toEqual([qp])
    expect(CM_ALL_ACCESS & AccessFlag.REMOTE_ATOMIC).toBe(AccessFlag.REMOTE_ATOMIC)

    const own = new FakeQp()
    createCmQp(() => own, { accessFlags: AccessFlag.LOCAL_WRITE }, { portNum: 2, pkeyIndex: 3 })
    expect(own.modified).toEqual([{ state: QpState.INIT, accessFlags: AccessFlag.LOCAL_WRITE, portNum: 2, pkeyIndex: 3 }])

    const bad = new FakeQp()
    expect(() => createCmQp(() => bad, { prepare: () => { throw new Error('no receives') } }, { portNum: 1, pkeyIndex: 0 })).toThrow('no receives')
    expect(bad.closed).toBe(1)
    const noInit = new FakeQp()
    noInit.failOn = QpState.INIT
    expect(() => createCmQp(() => noInit, {}, { portNum: 1, pkeyIndex: 0 })).toThrow('no INIT')
    expect(noInit.closed).toBe(1)
  })
})
