// Runs INSIDE the rxe-vm guest (test/guest/softroce-in-guest.test.ts boots it with the repository
// shared and the host's node): two softroce contexts in two node processes on the guest's loopback
// (this one and a forked copy of this file, `peer`), one RC QP each, connected by hand over IPC.
// Checks, byte for byte (SHA-256 of the target range against the source): a 1 MiB RDMA WRITE, an
// unaligned WRITE (1 MiB - 3 bytes at offset 5: every packet's payload off the 4096 grid, a short
// last packet), a 1 MiB RDMA READ back; then prints `GUEST-RESULT {...}` with the checks, the
// socket path and ICRC engine the stack chose, and the ACK timeouts/retransmissions it needed.
import { fork } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { createContext } from '@rdma-session/core'
import { nativeHelperStatus, softroce } from '../../dist/index.js'

const MiB = 1 << 20
const REGION = 4 * MiB
const sha = (b) => createHash('sha256').update(b).digest('hex')

/** A context with one region and one RC QP in INIT. */
async function open() {
  const ctx = await createContext({ provider: softroce({ port: 0 }) })
  const buf = Buffer.alloc(REGION)
  const mr = ctx.registerMemory(buf, { access: ['local-write', 'remote-read', 'remote-write'] })
  const qp = ctx.createQp({ caps: { maxSendWr: 64, maxRecvWr: 64 } })
  qp.modify({ state: 'INIT', accessFlags: 15, portNum: 1, pkeyIndex: 0 })
  return { ctx, buf, mr, qp, info: { endpoint: ctx.endpoint, qpn: qp.qpn, psn: qp.localPsn, addr: mr.addr, rkey: mr.rkey } }
}

function connect(qp, remote) {
  // timeout 18 (~1 s): a TCG guest on a loaded host stalls processes for long stretches
  qp.modify({ state: 'RTR', remote: remote.endpoint, pathMtu: 4096, destQpn: remote.qpn, rqPsn: remote.psn, maxDestRdAtomic: 16, minRnrTimer: 1 })
  qp.modify({ state: 'RTS', sqPsn: qp.localPsn, timeout: 18, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
}

if (process.argv[2] === 'peer') {
  const me = await open()
  process.on('message', (m) => {
    if (m.cmd === 'connect') {
      connect(me.qp, m.remote)
      process.send({ ok: true })
    } else if (m.cmd === 'sha') {
      process.send({ sha: sha(me.buf.subarray(m.off, m.off + m.len)) })
    } else if (m.cmd === 'close') {
      void me.ctx.close().then(() => process.exit(0))
    }
  })
  process.send({ info: me.info })
} else {
  const peer = fork(fileURLToPath(import.meta.url), ['peer'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const replies = []
  let wake = null
  peer.on('message', (m) => { replies.push(m); wake?.() })
  peer.on('exit', (code) => { replies.push({ exit: code }); wake?.() })
  const next = async () => {
    while (replies.length === 0) await new Promise((r) => (wake = r))
    const m = replies.shift()
    if (m.exit !== undefined) throw new Error(`peer exited with ${m.exit}`)
    return m
  }
  const call = async (m) => { peer.send(m); return next() }

  const { info: remote } = await next()
  const me = await open()
  await call({ cmd: 'connect', remote: me.info })
  connect(me.qp, remote)

  /** Posts one work request and waits for its completion; its status. */
  const complete = async (wr) => {
    me.qp.postSend({ wrId: 1, signaled: true, ...wr })
    for (;;) {
      const [wc] = me.qp.sendCq.poll(1)
      if (wc !== undefined) return wc.status
      await me.qp.sendCq.waitReady()
    }
  }
  const checks = []
  const check = (name, ok, detail) => checks.push({ name, ok, ...(detail !== undefined ? { detail } : {}) })
  const t0 = Date.now()
  randomBytes(2 * MiB).copy(me.buf, 0)
  const write = async (name, off, len) => {
    const status = await complete({ opcode: 'RDMA_WRITE', sgList: [me.mr.slice(off, len).toSge()], remoteAddr: remote.addr + off, rkey: remote.rkey })
    const { sha: got } = await call({ cmd: 'sha', off, len })
    check(name, status === 'SUCCESS' && got === sha(me.buf.subarray(off, off + len)), `status ${status}`)
  }
  await write('WRITE 1 MiB', 0, MiB)
  await write('WRITE 1 MiB - 3 bytes at offset 5', MiB + 5, MiB - 3)
  // READ the first MiB of the peer (what the first WRITE put there) into [2 MiB, 3 MiB)
  const status = await complete({ opcode: 'RDMA_READ', sgList: [me.mr.slice(2 * MiB, MiB).toSge()], remoteAddr: remote.addr, rkey: remote.rkey })
  check('READ 1 MiB back', status === 'SUCCESS' && me.buf.subarray(2 * MiB, 3 * MiB).equals(me.buf.subarray(0, MiB)), `status ${status}`)
  const ms = Date.now() - t0

  const io = me.ctx.device.diagnostics.batchedIo
  const c = me.ctx.device.counters.snapshot()
  const helper = nativeHelperStatus()
  const result = {
    checks, ms, helper: helper.helper, icrcEngine: helper.icrcEngine,
    batchedIo: io === undefined ? null : { send: io.send, receive: io.receive },
    retransmits: c.retransmits, timeouts: c.timeouts,
  }
  peer.send({ cmd: 'close' })
  await me.ctx.close()
  while (peer.exitCode === null) await new Promise((r) => peer.once('exit', r))
  console.log(`GUEST-RESULT ${JSON.stringify(result)}`)
}
