/** A stand-in for the native binding, for the loader and device-selection paths on a host without RDMA. */
import { VerbsError } from '../src/errors.js'
import { addressToGid } from '../src/gid.js'
import type { NativeBinding, NativeGidEntry } from '../src/native.js'

export interface FakeDeviceSpec {
  readonly name: string
  readonly portState?: 'PORT_ACTIVE' | 'PORT_DOWN'
  readonly gids?: readonly { index: number; address: string; type?: NativeGidEntry['type'] }[]
}

export function fakeBinding(devices: readonly FakeDeviceSpec[] | 'ENOSYS'): NativeBinding {
  const find = (name: string): FakeDeviceSpec => {
    if (devices === 'ENOSYS') throw new Error('unreachable')
    const d = devices.find((x) => x.name === name)
    if (d === undefined) throw new VerbsError('ibv_open_device', 19, 'ENODEV', 'no such device')
    return d
  }
  class Device {
    readonly spec: FakeDeviceSpec
    constructor(name: string) {
      this.spec = find(name)
    }
    close(): void {}
    query() {
      return { name: this.spec.name, physPortCnt: 1, maxQp: 1024, maxQpWr: 1024, maxSge: 8, maxMrSize: 2 ** 40, atomicCap: 'hca', maxQpRdAtom: 16, maxQpInitRdAtom: 16 }
    }
    queryPort(port: number) {
      const active = (this.spec.portState ?? 'PORT_ACTIVE') === 'PORT_ACTIVE'
      return { port, state: active ? 'PORT_ACTIVE' : 'PORT_DOWN', stateCode: active ? 4 : 1, maxMtu: 4096, activeMtu: 1024, gidTblLen: 16, pkeyTblLen: 1, linkLayer: 'ethernet', maxMsgSz: 2 ** 31 }
    }
    gidTable(): NativeGidEntry[] {
      return (this.spec.gids ?? []).map((g) => ({ index: g.index, port: 1, gid: addressToGid(g.address), type: g.type ?? 'roce-v2', ifindex: 2 }))
    }
    watch(): void {}
    stats() {
      return { qps: 0, cqs: 0, mrs: 0, pds: 0, srqs: 0 }
    }
  }
  class Unused {
    constructor() {
      throw new Error('the fake binding has no verbs objects')
    }
  }
  return {
    Device, Pd: Unused, Mr: Unused, Cq: Unused, Srq: Unused, Qp: Unused,
    listDevices() {
      if (devices === 'ENOSYS') throw new VerbsError('ibv_get_device_list', 38, 'ENOSYS', 'ibv_get_device_list failed: Function not implemented (ENOSYS)')
      return devices.map((d) => ({ name: d.name, guid: 1n, nodeType: 'RNIC' }))
    },
    setBuffers() {},
    layout: { descriptorBytes: 568, maxSge: 32, recordWords: 8, maxRecords: 256 },
  } as unknown as NativeBinding
}
