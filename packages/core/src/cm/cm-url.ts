/** `rdma-cm://host:port` URLs: an IP address (IPv6 in brackets) and an rdma_cm port. */
import { isIP } from 'node:net'
import { InvalidArgumentError } from '../errors.js'

export const CM_SCHEME = 'rdma-cm:'

export function isCmUrl(url: unknown): url is string {
  return typeof url === 'string' && url.startsWith(`${CM_SCHEME}//`)
}

export function parseCmUrl(url: string): { host: string; port: number } {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new InvalidArgumentError(`not a URL: ${JSON.stringify(url)}; use rdma-cm://<ip>:<port>`)
  }
  if (u.protocol !== CM_SCHEME) throw new InvalidArgumentError(`${url} is not an rdma-cm:// URL`)
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
  const port = Number(u.port)
  if (isIP(host) === 0) throw new InvalidArgumentError(`${url}: the host must be an IP address (rdma_cm here resolves no names)`)
  if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new InvalidArgumentError(`${url}: give the rdma_cm port, 1..65535`)
  if (u.pathname !== '' && u.pathname !== '/') throw new InvalidArgumentError(`${url}: an rdma-cm URL has no path`)
  return { host, port }
}

export function cmUrl(address: string, port: number): string {
  return `rdma-cm://${address.includes(':') ? `[${address}]` : address}:${port}`
}
