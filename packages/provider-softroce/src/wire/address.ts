/** Text IP addresses to their 4 or 16 network-order bytes, as the ICRC and pcap headers need. */
import { WireError, WireErrorCode } from './errors.js'

function bad(family: 4 | 6, text: string): WireError {
  return new WireError(WireErrorCode.ADDRESS, `'${text}' is not an IPv${family} address`)
}

function parseV4Into(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split('.')
  if (parts.length !== 4) return false
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return false
    const v = Number(p)
    if (v > 255) return false
    out[at + i] = v
  }
  return true
}

function parseV6(text: string): Uint8Array | undefined {
  const zone = text.indexOf('%') // link-local scope (e.g. from rinfo.address): not on the wire
  let s = zone >= 0 ? text.slice(0, zone) : text
  const out = new Uint8Array(16)
  // An embedded IPv4 address (::ffff:1.2.3.4) fills the last two groups: parse it, then let the
  // group parser see two zero groups in its place.
  const lastColon = s.lastIndexOf(':')
  const embedded = lastColon >= 0 && s.indexOf('.', lastColon) > 0
  if (embedded) {
    if (!parseV4Into(s.slice(lastColon + 1), out, 12)) return undefined
    s = `${s.slice(0, lastColon + 1)}0:0`
  }
  const halves = s.split('::')
  if (halves.length > 2) return undefined
  const groups = (h: string): string[] => (h === '' ? [] : h.split(':'))
  const head = groups(halves[0] as string)
  const tail = halves.length === 2 ? groups(halves[1] as string) : []
  if (halves.length === 2 ? head.length + tail.length > 7 : head.length !== 8) return undefined
  const words = [...head, ...new Array<string>(8 - head.length - tail.length).fill('0'), ...tail]
  for (let i = 0; i < (embedded ? 6 : 8); i++) {
    const g = words[i] as string
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined
    const v = parseInt(g, 16)
    out[2 * i] = v >>> 8
    out[2 * i + 1] = v & 0xff
  }
  return out
}

/**
 * 4 bytes for family 4 (dotted quad, or an IPv4-mapped IPv6 text such as '::ffff:10.0.0.1', as a
 * dual-stack socket reports IPv4 peers), 16 bytes for family 6 (a '%zone' suffix is ignored).
 * Throws WireError ERR_WIRE_ADDRESS.
 */
export function addressBytes(family: 4 | 6, text: string): Uint8Array {
  if (typeof text !== 'string') throw bad(family, String(text))
  if (family === 4) {
    const out = new Uint8Array(4)
    if (parseV4Into(text, out, 0)) return out
    const v6 = text.includes(':') ? parseV6(text) : undefined
    if (v6 && v6.subarray(0, 12).every((b, i) => b === (i < 10 ? 0 : 0xff))) return v6.slice(12)
    throw bad(family, text)
  }
  if (family === 6) {
    const out = parseV6(text)
    if (out) return out
    throw bad(family, text)
  }
  throw new WireError(WireErrorCode.ADDRESS, `IP family must be 4 or 6, got ${String(family)}`)
}
