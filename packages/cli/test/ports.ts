/** Ports for tests of two softroce stacks on loopback (127.0.0.1 and 127.0.0.2). */
import dgram from 'node:dgram'
import net from 'node:net'

/** A TCP port free on 127.0.0.1 now. */
export async function freeTcpPort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const { port } = s.address() as net.AddressInfo
  await new Promise((r) => s.close(r))
  return port
}

/** A UDP port free on both 127.0.0.1 and 127.0.0.2 now (the two sides' RoCE port); a random one could be anyone's. */
export async function freeRocePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const a = dgram.createSocket('udp4')
    const b = dgram.createSocket('udp4')
    try {
      await new Promise<void>((resolve, reject) => a.once('error', reject).bind({ port: 0, address: '127.0.0.1', exclusive: true }, resolve))
      const { port } = a.address()
      await new Promise<void>((resolve, reject) => b.once('error', reject).bind({ port, address: '127.0.0.2', exclusive: true }, resolve))
      return port
    } catch (err) {
      if (attempt >= 20) throw err
    } finally {
      for (const s of [a, b]) {
        try {
          s.close()
        } catch {
          // not bound
        }
      }
    }
  }
}

