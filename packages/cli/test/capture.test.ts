import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { countPcapRecords, runCapture } from '../src/capture/run-capture.js'
import { environmentSkip } from '../../../tools/test-env.mjs'

const tsharkSkip = environmentSkip('capture decoded by tshark', (() => {
  try {
    execFileSync('tshark', ['--version'], { stdio: 'ignore' })
    return null
  } catch {
    return 'tshark is not installed (apt-get install tshark; CI installs it)'
  }
})())

describe('capture', () => {
  it('writes a pcap of a softroce session with every step', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'capture-'))
    const r = await runCapture({ path: join(dir, 'out.pcap') })
    expect(r.steps).toEqual([expect.stringMatching(/^session [0-9a-f]{32} \(none, MTU 1024\)/), 'RDMA WRITE 3000 bytes (first, middle, last packets)', 'RDMA READ 2048 bytes (request, two responses)', 'SEND "hello wireshark"', 'ATOMIC FETCH_AND_ADD', 'session closed'])
    expect(r.packets).toBe(countPcapRecords(r.path))
    // WRITE: 3 packets + ACK; READ: request + 2 responses; SEND + ACK; atomic + atomic ACK = 11 at least.
    expect(r.packets).toBeGreaterThanOrEqual(11)
    expect(r.tsharkCommand).toContain(`tshark -r ${r.path}`)
  })

  it.skipIf(Boolean(tsharkSkip))('tshark decodes every RoCEv2 opcode of the capture', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'capture-'))
    const r = await runCapture({ path: join(dir, 'out.pcap') })
    expect(r.decoded).toBeDefined()
    // At least one of each (a retransmission on a stalled host adds a second copy, not a new opcode).
    const opcodes = ['RDMA WRITE First', 'RDMA WRITE Middle', 'RDMA WRITE Last', 'RDMA READ Request', 'RDMA READ Response First', 'RDMA READ Response Last', 'SEND Only', 'FetchAdd', 'ATOMIC Acknowledge']
    expect(opcodes.filter((op) => !((r.decoded![op] ?? 0) >= 1)), JSON.stringify(r.decoded)).toEqual([])
    expect(r.decoded!.Acknowledge).toBeGreaterThanOrEqual(2)
  })

  it('an encrypted capture shows no plaintext of the payload', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'capture-'))
    const r = await runCapture({ path: join(dir, 'enc.pcap'), encrypt: true })
    expect(r.steps[0]).toMatch(/aes-256-gcm/)
    const bytes = (await import('node:fs')).readFileSync(r.path)
    expect(bytes.includes(Buffer.from('hello wireshark'))).toBe(false)
    const plain = await runCapture({ path: join(dir, 'plain.pcap') })
    expect((await import('node:fs')).readFileSync(plain.path).includes(Buffer.from('hello wireshark'))).toBe(true)
  })

  it('counts pcap records and refuses files that are not pcap', () => {
    const dir = mkdtempSync(join(tmpdir(), 'capture-'))
    const f = join(dir, 'x.pcap')
    const header = Buffer.alloc(24)
    header.writeUInt32LE(0xa1b2c3d4, 0)
    const rec = (len: number) => {
      const h = Buffer.alloc(16)
      h.writeUInt32LE(len, 8)
      h.writeUInt32LE(len, 12)
      return Buffer.concat([h, Buffer.alloc(len)])
    }
    writeFileSync(f, Buffer.concat([header, rec(10), rec(0), rec(100)]))
    expect(countPcapRecords(f)).toBe(3)
    writeFileSync(f, Buffer.from('not a capture file at all, no'))
    expect(() => countPcapRecords(f)).toThrow(/not a pcap file/)
  })
})
