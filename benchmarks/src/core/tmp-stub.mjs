// core's own cost per WR with a stub provider that does nothing; A/B between two builds of core
const which = process.argv[2] ?? 'dist'
const { QueuePair, CompletionQueue, QpState } = await import(`/work/wt/i14disp/packages/core/${which}/index.js`)
let notify = null
let wcsQ = []
const cqStub = { depth: 1024, setNotify(cb) { notify = cb }, poll(max) { const out = wcsQ; wcsQ = []; return out }, destroy() {} }
let posted = []
const qpStub = { qpn: 7, state: QpState.RTS, setEventHandler() {}, postSend(wr) { posted.push(wr.wrId) }, modify() {}, destroy() {} }
const cq = new CompletionQueue(cqStub)
const qp = new QueuePair(qpStub, cq, cq, { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 }, {}, 1, { atomics: true, immediate: true, provider: 'stub' })
const wr = { wrId: 0, opcode: 'RDMA_WRITE', sgList: [{ addr: 0, length: 8, lkey: 1 }], signaled: true, remoteAddr: 0, rkey: 2 }
function complete() {
  for (let i = 0; i < posted.length; i++) wcsQ.push({ wrId: posted[i], status: 'SUCCESS', opcode: 'RDMA_WRITE', byteLen: 8, qpn: 7 })
  posted = []
}
function round(n) {
  let done = 0, p = 0
  while (done < n) {
    for (let i = 0; i < 16; i++) { wr.wrId = ++p; qp.postSend(wr) }
    complete()
    notify()
    for (;;) { const w = cq.poll(64); if (w.length === 0) break; done += w.length }
  }
}
function base(n) {
  let done = 0, p = 0
  while (done < n) {
    for (let i = 0; i < 16; i++) { wr.wrId = ++p; qpStub.postSend(wr) }
    complete()
    for (;;) { const w = cqStub.poll(64); if (w.length === 0) break; done += w.length }
  }
}
const cpu = (fn) => { const c0 = process.cpuUsage(); fn(); const c = process.cpuUsage(c0); return (c.user + c.system) / 1000 }
let bmin = Infinity, cmin = Infinity
for (let k = 0; k < 15; k++) {
  bmin = Math.min(bmin, cpu(() => base(3e5)) / 0.3)
  cmin = Math.min(cmin, cpu(() => round(3e5)) / 0.3)
}
console.log(`${which}: stub base ${bmin.toFixed(0)} ns/WR  core ${cmin.toFixed(0)} ns/WR  core's own ${(cmin - bmin).toFixed(0)} ns/WR`)
