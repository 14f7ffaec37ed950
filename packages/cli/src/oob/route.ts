/** The local address the kernel's routing picks toward a host (what a connected UDP socket is bound to). */
import dgram from 'node:dgram'
import { isIP } from 'node:net'
import { OobError, unmapAddress } from './tcp.js'

export async function routeSourceAddress(host: string): Promise<string> {
  const family = isIP(host)
  if (family === 0) throw new OobError('ERR_OOB_ADDRESS', `${host} is not an IP address (rdma_cm needs the peer's IP address)`)
  const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4')
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.connect(9, host, () => resolve())
    })
    return unmapAddress(socket.address().address)
  } catch (err) {
    throw new OobError('ERR_OOB_ADDRESS', `no route to ${host} (${(err as Error).message}): give --address`)
  } finally {
    socket.close()
  }
}
