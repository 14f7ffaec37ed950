/** `rdma-session capture`: a short softroce session between two local stacks, every packet written to a pcap file. */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { createContext, type Context, type Provider } from '@rdma-session/core'

export interface CaptureOptions {
  /** The pcap file to write. */
  readonly path: string
  /** Encrypt the session (AES-256-GCM): the capture then shows ciphertext. Default false. */
  readonly encrypt?: boolean
  /** How softroce is created; tests may substitute. Default: import('@rdma-session/provider-softroce'). */
  readonly softroce?: (options: Record<string, unknown>) => Provider | Promise<Provider>
}

export interface CaptureResult {
  readonly path: string
  readonly packets: number
  /** The UDP ports the two stacks used (4791 when it was free on 127.0.0.1 and 127.0.0.2). */
  readonly endpoints: readonly string[]
  readonly udpPort: number
  /** The steps the session went through. */
  readonly steps: readonly string[]
  /** How to open it. */
  readonly tsharkCommand: string
  /** tshark's decode of the file (opcode names and counts), when tshark is installed. */
  readonly decoded?: Readonly<Record<string, number>>
}

/** Records in a pcap file (classic format, either byte order). */
export function countPcapRecords(file: string): number {
  const b = readFileSync(file)
  if (b.length < 24) throw new Error(`${file} is not a pcap file (${b.length} bytes)`)
  const magic = b.readUInt32LE(0)
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${file} is not a pcap file (magic 0x${magic.toString(16)})`)
  let n = 0
  for (let off = 24; off + 16 <= b.length; n++) off += 16 + (le ? b.readUInt32LE(off + 8) : b.readUInt32BE(off + 8))
  return n
}

async function defaultSoftroce(options: Record<string, unknown>): Promise<Provider> {
  const mod = (await import('@rdma-session/provider-softroce')) as { softroce(o: Record<string, unknown>): Provider }
  return mod.softroce(options)
}

async function openPair(make: CaptureOptions['softroce'] & {}, path: string): Promise<[Context, Context]> {
  // 4791 on two loopback addresses lets Wireshark dissect RoCEv2 without "Decode As".
  const tries: Array<[Record<string, unknown>, Record<string, unknown>]> = [
    [{ address: '127.0.0.1', port: 4791, capture: path }, { address: '127.0.0.2', port: 4791 }],
    [{ address: '127.0.0.1', port: 0, capture: path }, { address: '127.0.0.1', port: 0 }],
  ]
  let last: unknown
  for (const [a, b] of tries) {
    let first: Context | null = null
    try {
      first = await createContext({ provider: await make(a) })
      const second = await createContext({ provider: await make(b) })
      return [first, second]
    } catch (err) {
      last = err
      await first?.close()
    }
  }
  throw last
}

/** RC BTH opcodes (IB spec table 38) by number, as tshark prints them with `-e infiniband.bth.opcode`. */
const RC_OPCODES: Readonly<Record<number, string>> = {
  0: 'SEND First', 1: 'SEND Middle', 2: 'SEND Last', 3: 'SEND Last with Immediate', 4: 'SEND Only', 5: 'SEND Only with Immediate',
  6: 'RDMA WRITE First', 7: 'RDMA WRITE Middle', 8: 'RDMA WRITE Last', 9: 'RDMA WRITE Last with Immediate', 10: 'RDMA WRITE Only', 11: 'RDMA WRITE Only with Immediate',
  12: 'RDMA READ Request', 13: 'RDMA READ Response First', 14: 'RDMA READ Response Middle', 15: 'RDMA READ Response Last', 16: 'RDMA READ Response Only',
  17: 'Acknowledge', 18: 'ATOMIC Acknowledge', 19: 'CmpSwap', 20: 'FetchAdd',
}

function tsharkDecode(path: string, port: number): Record<string, number> | undefined {
  try {
    const out = execFileSync('tshark', ['-r', path, '-d', `udp.port==${port},infiniband`, '-T', 'fields', '-e', 'infiniband.bth.opcode'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 })
    const counts: Record<string, number> = {}
    for (const line of out.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const name = RC_OPCODES[Number(line)] ?? `opcode ${line}`
      counts[name] = (counts[name] ?? 0) + 1
    }
    return counts
  } catch {
    return undefined
  }
}

export async function runCapture(options: CaptureOptions): Promise<CaptureResult> {
  const path = resolve(options.path)
  const [alice, bob] = await openPair(options.softroce ?? defaultSoftroce, path)
  const steps: string[] = []
  try {
    const target = bob.registerMemory(Buffer.alloc(8192), { access: ['local-write', 'remote-read', 'remote-write', 'remote-atomic'] })
    bob.sessions.expose('data', target.region())
    const session = await alice.sessions.create({ peer: bob, params: { encryption: options.encrypt === true ? 'aes-256-gcm' : 'none', encapsulation: { mtu: 1024 } }, qps: [{ qos: { class: 'latency' } }] })
    const [qp] = session.qps
    const remote = session.remoteRegions.get('data')!
    const local = alice.registerMemory(Buffer.alloc(8192))
    steps.push(`session ${session.id} (${session.params.encryption.suite}, MTU 1024), QP ${qp!.qpn} -> ${qp!.remoteQpn}`)
    local.bytes.fill(0x61, 0, 3000)
    await qp!.write(local.slice(0, 3000), remote)
    steps.push('RDMA WRITE 3000 bytes (first, middle, last packets)')
    await qp!.read(local.slice(4096, 2048), { ...remote, length: 2048 })
    steps.push('RDMA READ 2048 bytes (request, two responses)')
    const inbox = bob.registerMemory(Buffer.alloc(64))
    const bobQp = bob.sessions.get(session.id).qp(qp!.remoteQpn!)
    const got = bobQp.recv(inbox.slice())
    await qp!.send(Buffer.from('hello wireshark'))
    await got
    steps.push('SEND "hello wireshark"')
    await qp!.fetchAndAdd(local.slice(8184, 8), { ...remote, addr: remote.addr + 8184, length: 8 }, 1n)
    steps.push('ATOMIC FETCH_AND_ADD')
    await session.close()
    steps.push('session closed')
  } finally {
    await alice.close()
    await bob.close()
  }
  const udpPort = alice.info.port
  const endpoints = [`${alice.info.address}:${alice.info.port}`, `${bob.info.address}:${bob.info.port}`]
  const packets = countPcapRecords(path)
  const decodeAs = udpPort === 4791 && bob.info.port === 4791 ? '' : ` -d udp.port==${udpPort},infiniband -d udp.port==${bob.info.port},infiniband`
  const tsharkCommand = `tshark -r ${path}${decodeAs} -V`
  const decoded = tsharkDecode(path, udpPort)
  return { path, packets, endpoints, udpPort, steps, tsharkCommand, ...(decoded === undefined ? {} : { decoded }) }
}
