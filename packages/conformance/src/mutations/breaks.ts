/**
 * Deliberately broken providers: each break is a Tamper (see interposer.ts) and the conformance
 * cases that must catch it. The mutation runner proves each one caught on a given provider.
 */
import { AccessFlag, type WorkCompletion } from '@rdma-session/core'
import type { CompletionSink, Tamper } from './interposer.js'

export interface Break {
  readonly name: string
  /** A fresh tamper (its own state) for each test's endpoints. */
  tamper(): Tamper
  /** Conformance cases ('group › test name') that fail on a provider with this break; one is enough. */
  readonly caughtBy: readonly string[]
}

const isRecv = (wc: WorkCompletion): boolean => wc.opcode === 'RECV' || wc.opcode === 'RECV_RDMA_WITH_IMM'
const ALL_REMOTE = AccessFlag.REMOTE_READ | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_ATOMIC

/** How long a held completion waits for a later one to overtake it before it goes out anyway. */
const HOLD_MS = 200

const ORDERED_PROMISES = 'ordering › promise operations settle in post order: a 64 KiB READ completes before the small WRITE after it'
const ORDERED_RAW = 'ordering › completions come in post order across mixed opcodes; unsignaled WRs produce none (raw verbs)'

export const BREAKS: readonly Break[] = [
  {
    name: 'misordered completions: the first successful send completion of a QP is overtaken by the next',
    caughtBy: [ORDERED_PROMISES, ORDERED_RAW],
    tamper: () => {
      const held = new Map<number, WorkCompletion>()
      const done = new Set<number>()
      return {
        completion: (wc: WorkCompletion, sink: CompletionSink) => {
          const first = held.get(wc.qpn)
          if (isRecv(wc)) return sink.emit(wc)
          if (first !== undefined) {
            held.delete(wc.qpn)
            sink.emit(wc)
            return sink.emit(first)
          }
          if (wc.status !== 'SUCCESS' || done.has(wc.qpn)) return sink.emit(wc)
          done.add(wc.qpn)
          held.set(wc.qpn, wc)
          sink.later(HOLD_MS, () => {
            if (held.get(wc.qpn) === wc) sink.emit(wc)
            held.delete(wc.qpn)
          })
        },
      }
    },
  },
  {
    name: 'a signaled WR handled as unsignaled: the first signaled send WR of a QP never completes',
    caughtBy: [ORDERED_PROMISES, ORDERED_RAW],
    tamper: () => {
      const done = new Set<number>()
      return {
        postSend: (wr, qpn) => {
          if (!wr.signaled || done.has(qpn)) return wr
          done.add(qpn)
          return { ...wr, signaled: false }
        },
      }
    },
  },
  {
    name: 'a READ completes before its data lands (the bytes arrive 50 ms after the completion)',
    caughtBy: ['operations › RDMA_READ of 64 KiB (many MTUs) is byte-exact'],
    tamper: () => {
      const targets = new Map<string, { views: Uint8Array[]; before: Uint8Array[] }>()
      return {
        postSend: (wr, qpn, bytesOf) => {
          if (wr.opcode === 'RDMA_READ') {
            const views = wr.sgList.map(bytesOf)
            targets.set(`${qpn}:${wr.wrId}`, { views, before: views.map((v) => Uint8Array.from(v)) })
          }
          return wr
        },
        completion: (wc, sink) => {
          const t = wc.opcode === 'RDMA_READ' && wc.status === 'SUCCESS' ? targets.get(`${wc.qpn}:${wc.wrId}`) : undefined
          if (t !== undefined) {
            const landed = t.views.map((v) => Uint8Array.from(v))
            t.views.forEach((v, i) => v.set(t.before[i]!))
            sink.later(50, () => t.views.forEach((v, i) => v.set(landed[i]!)))
          }
          sink.emit(wc)
        },
      }
    },
  },
  {
    name: 'a receive completes on the wrong QP (another QP whose receives complete on the same CQ)',
    caughtBy: ['operations › on a CQ shared by two QPs, a SEND completes a receive of the QP it was sent to, with that QPN'],
    tamper: () => ({
      completion: (wc, sink) => {
        const other = isRecv(wc) ? sink.receiveQpns().find((q) => q !== wc.qpn) : undefined
        sink.emit(other === undefined ? wc : { ...wc, qpn: other })
      },
    }),
  },
  {
    name: 'wrong byteLen: receive completions report one byte more than arrived',
    caughtBy: ['operations › SEND lands byte-for-byte in the posted receive'],
    tamper: () => ({ completion: (wc, sink) => sink.emit(isRecv(wc) && wc.status === 'SUCCESS' ? { ...wc, byteLen: wc.byteLen + 1 } : wc) }),
  },
  {
    name: 'wrong imm: the immediate data has its low bit flipped',
    caughtBy: ['operations › SEND_WITH_IMM delivers the payload and the 32-bit immediate', 'operations › RDMA_WRITE_WITH_IMM writes, consumes one receive and delivers the immediate'],
    tamper: () => ({ completion: (wc, sink) => sink.emit(wc.imm === undefined ? wc : { ...wc, imm: (wc.imm ^ 1) >>> 0 }) }),
  },
  {
    name: 'flush out of order: WR_FLUSH_ERR completions come in reverse post order',
    caughtBy: ['QP state machine › modify to ERR flushes outstanding receives in post order, without closing the QP'],
    tamper: () => {
      let flushes: WorkCompletion[] | null = null
      return {
        completion: (wc, sink) => {
          if (wc.status !== 'WR_FLUSH_ERR') return sink.emit(wc)
          if (flushes === null) {
            const batch: WorkCompletion[] = (flushes = [])
            sink.later(0, () => {
              flushes = null
              for (const f of batch.reverse()) sink.emit(f)
            })
          }
          flushes.push(wc)
        },
      }
    },
  },
  {
    name: 'no flush: a QP entering ERR drops its outstanding WRs without WR_FLUSH_ERR completions',
    caughtBy: ['error statuses › WR_FLUSH_ERR: closing a QP flushes its outstanding receives promptly, in post order'],
    tamper: () => ({ completion: (wc, sink) => (wc.status === 'WR_FLUSH_ERR' ? undefined : sink.emit(wc)) }),
  },
  {
    name: 'missed access check: every region is registered with all remote rights',
    caughtBy: ['error statuses › REM_ACCESS_ERR when the region lacks remote-write or remote-read'],
    tamper: () => ({ register: (access) => access | ALL_REMOTE }),
  },
  {
    name: 'a completion delivered twice (every successful send completion)',
    caughtBy: [ORDERED_RAW],
    tamper: () => ({
      completion: (wc, sink) => {
        sink.emit(wc)
        if (!isRecv(wc) && wc.status === 'SUCCESS') sink.emit({ ...wc })
      },
    }),
  },
  {
    name: 'a failed WR reported as successful (REM_ACCESS_ERR becomes SUCCESS)',
    caughtBy: ['error statuses › REM_ACCESS_ERR for a bad rkey: target memory untouched, requester QP moves to ERR'],
    tamper: () => ({ completion: (wc, sink) => sink.emit(wc.status === 'REM_ACCESS_ERR' ? { ...wc, status: 'SUCCESS' } : wc) }),
  },
  {
    name: 'a short WRITE: the last byte of an RDMA_WRITE is not sent',
    caughtBy: ['operations › RDMA_WRITE lands byte-for-byte and touches nothing around the target range'],
    tamper: () => ({
      postSend: (wr) => {
        const last = wr.sgList[wr.sgList.length - 1]
        if (wr.opcode !== 'RDMA_WRITE' || last === undefined || last.length === 0) return wr
        return { ...wr, sgList: [...wr.sgList.slice(0, -1), { ...last, length: last.length - 1 }] }
      },
    }),
  },
]
