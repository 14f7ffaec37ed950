import { describe, expect, it } from 'vitest'
import { HeaderSize, RcOpcode, opcodeInfo, opcodeName } from '../../src/wire/opcodes.js'

// Expected values written out from IBTA vol. 1 table 38 / kernel rxe_opcode.c, independently of
// the table in src/wire/opcodes.ts.
const EXPECTED: [string, number, string[], boolean, boolean, string][] = [
  ['SEND_FIRST', 0x00, [], true, true, 'first'],
  ['SEND_MIDDLE', 0x01, [], true, true, 'middle'],
  ['SEND_LAST', 0x02, [], true, true, 'last'],
  ['SEND_LAST_WITH_IMMEDIATE', 0x03, ['ImmDt'], true, true, 'last'],
  ['SEND_ONLY', 0x04, [], true, true, 'only'],
  ['SEND_ONLY_WITH_IMMEDIATE', 0x05, ['ImmDt'], true, true, 'only'],
  ['RDMA_WRITE_FIRST', 0x06, ['RETH'], true, true, 'first'],
  ['RDMA_WRITE_MIDDLE', 0x07, [], true, true, 'middle'],
  ['RDMA_WRITE_LAST', 0x08, [], true, true, 'last'],
  ['RDMA_WRITE_LAST_WITH_IMMEDIATE', 0x09, ['ImmDt'], true, true, 'last'],
  ['RDMA_WRITE_ONLY', 0x0a, ['RETH'], true, true, 'only'],
  ['RDMA_WRITE_ONLY_WITH_IMMEDIATE', 0x0b, ['RETH', 'ImmDt'], true, true, 'only'],
  ['RDMA_READ_REQUEST', 0x0c, ['RETH'], false, true, 'only'],
  ['RDMA_READ_RESPONSE_FIRST', 0x0d, ['AETH'], true, false, 'first'],
  ['RDMA_READ_RESPONSE_MIDDLE', 0x0e, [], true, false, 'middle'],
  ['RDMA_READ_RESPONSE_LAST', 0x0f, ['AETH'], true, false, 'last'],
  ['RDMA_READ_RESPONSE_ONLY', 0x10, ['AETH'], true, false, 'only'],
  ['ACKNOWLEDGE', 0x11, ['AETH'], false, false, 'only'],
  ['ATOMIC_ACKNOWLEDGE', 0x12, ['AETH', 'AtomicAckETH'], false, false, 'only'],
  ['COMPARE_SWAP', 0x13, ['AtomicETH'], false, true, 'only'],
  ['FETCH_ADD', 0x14, ['AtomicETH'], false, true, 'only'],
  ['SEND_LAST_WITH_INVALIDATE', 0x16, ['IETH'], true, true, 'last'],
  ['SEND_ONLY_WITH_INVALIDATE', 0x17, ['IETH'], true, true, 'only'],
]

describe('RC opcodes', () => {
  it('has exactly the 23 RC opcodes with the IBTA values', () => {
    expect(Object.keys(RcOpcode)).toHaveLength(EXPECTED.length)
    for (const [name, value] of EXPECTED) expect(RcOpcode[name as keyof typeof RcOpcode], name).toBe(value)
  })

  it.each(EXPECTED)('%s: headers, payload, direction, position', (name, value, headers, hasPayload, isRequest, position) => {
    const info = opcodeInfo(value)
    expect(info).toBeDefined()
    expect(info?.name).toBe(name)
    expect(info?.opcode).toBe(value)
    expect(info?.headers).toEqual(headers)
    expect(info?.hasPayload).toBe(hasPayload)
    expect(info?.isRequest).toBe(isRequest)
    expect(info?.position).toBe(position)
    const len = 12 + headers.reduce((n, h) => n + HeaderSize[h as keyof typeof HeaderSize], 0)
    expect(info?.headerLength).toBe(len)
    expect(opcodeName(value)).toBe(name)
  })

  it('knows nothing else (reserved RC codes, UC, RD, UD, CNP, out of range)', () => {
    const known = new Set(EXPECTED.map((e) => e[1]))
    for (let op = 0; op < 256; op++) if (!known.has(op)) expect(opcodeInfo(op), `0x${op.toString(16)}`).toBeUndefined()
    for (const op of [-1, 256, 1.5, Number.NaN]) expect(opcodeInfo(op)).toBeUndefined()
    expect(opcodeName(0x81)).toBe('0x81')
  })

  it('header sizes match the IBTA', () => {
    expect(HeaderSize).toEqual({ BTH: 12, RETH: 16, AETH: 4, ImmDt: 4, AtomicETH: 28, AtomicAckETH: 8, IETH: 4, ICRC: 4 })
  })
})
