/** Host names on the fabric: `address:port` (IPv6 addresses in brackets). */

export function hostKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}

/** The address part of a host key. */
export function hostAddress(key: string): string {
  const a = key.slice(0, key.lastIndexOf(':'))
  return a.startsWith('[') ? a.slice(1, -1) : a
}

/** True when `pattern` (an address, or `address:port`) names the host `key`. */
export function hostMatches(pattern: string, key: string): boolean {
  return pattern === key || pattern === hostAddress(key)
}
