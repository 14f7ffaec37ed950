// A provider that moves nothing: each send WR's completion is ready to poll as soon as it is
// posted (as from a NIC that finished at once). What a loop over it costs through core, less what
// the same loop costs on its SPI directly, is core's own work per WR, free of any transport.
import { SPECIFICATION_VERSION } from '@rdma-session/core'

const CAPS = { encryption: false, atomics: true, immediate: true, maxMtu: 4096, maxQps: 16, maxQpWr: 1024, maxSge: 4, maxInline: 64, maxMrSize: 1 << 30, qosScheduling: false }

class NullCq {
  #ready = []
  #notify = null
  constructor(depth) {
    this.depth = depth
  }
  poll(max) {
    if (this.#ready.length <= max) {
      const out = this.#ready
      this.#ready = []
      return out
    }
    return this.#ready.splice(0, max)
  }
  setNotify(cb) {
    this.#notify = cb
  }
  complete(wc) {
    this.#ready.push(wc)
  }
  destroy() {}
}

class NullQp {
  state = 'RESET'
  #cq
  constructor(qpn, init) {
    this.qpn = qpn
    this.#cq = init.sendCq
  }
  modify(attrs) {
    this.state = attrs.state
  }
  query() {
    return { qpn: this.qpn, state: this.state, encrypted: false }
  }
  postSend(wr) {
    if (wr.signaled) this.#cq.complete({ wrId: wr.wrId, status: 'SUCCESS', opcode: wr.opcode, byteLen: 0, qpn: this.qpn })
  }
  postRecv() {}
  setEventHandler() {}
  destroy() {}
}

export function nullProvider() {
  let keys = 1
  let qpns = 0x100
  const pd = {
    registerMemory: (buffer, access) => ({ lkey: keys, rkey: keys++, addr: 0x10000, length: buffer.length, access, deregister: () => undefined }),
    createCq: (depth) => new NullCq(depth),
    createQp: (init) => new NullQp(qpns++, init),
    dealloc: () => undefined,
  }
  const device = { info: { name: 'null0', address: '127.0.0.1', port: 4791, gid: '::ffff:127.0.0.1' }, allocPd: () => pd, close: async () => undefined }
  return { name: 'null', specificationVersion: SPECIFICATION_VERSION, capabilities: CAPS, openDevice: async () => device }
}
