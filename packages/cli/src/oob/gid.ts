/**
 * RoCEv2 GIDs as the out-of-band exchanges of rdma-core's examples and perftest carry them: an
 * IPv4 address is the GID ::ffff:a.b.c.d, an IPv6 address is its own GID; printed as glibc's
 * inet_ntop does.
 */
import net from 'node:net'

const V4_MAPPED = Buffer.from('00000000000000000000ffff', 'hex')

/** The IP address a RoCEv2 GID stands for: ::ffff:a.b.c.d is IPv4, anything else IPv6. */
export function gidToAddress(gid: Uint8Array): { family: 4 | 6; address: string } {
  const b = Buffer.from(gid)
  if (b.subarray(0, 12).equals(V4_MAPPED)) return { family: 4, address: [...b.subarray(12)].join('.') }
  return { family: 6, address: formatGid(b) }
}

/** The GID of a local address: ::ffff:a.b.c.d for IPv4, the address itself for IPv6. */
export function addressToGid(address: string): Uint8Array {
  const plain = address.replace(/%.*$/, '')
  if (net.isIPv4(plain)) return Buffer.concat([V4_MAPPED, Buffer.from(plain.split('.').map(Number))])
  if (!net.isIPv6(plain)) throw new Error(`not an IP address: '${address}'`)
  const [head = '', tail] = plain.split('::') as [string, string?]
  const words = (s: string): number[] => (s === '' ? [] : s.split(':').flatMap((w) => (w.includes('.') ? ipv4Words(w) : [parseInt(w, 16)])))
  const h = words(head)
  const t = tail === undefined ? [] : words(tail)
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t]
  const out = Buffer.alloc(16)
  all.forEach((w, i) => out.writeUInt16BE(w, 2 * i))
  return out
}

function ipv4Words(dotted: string): number[] {
  const [a = 0, b = 0, c = 0, d = 0] = dotted.split('.').map(Number)
  return [(a << 8) | b, (c << 8) | d]
}

/** inet_ntop(AF_INET6) as glibc writes it: longest zero run as '::', ::ffff:a.b.c.d and ::a.b.c.d dotted. */
export function formatGid(gid: Uint8Array): string {
  const words = Array.from({ length: 8 }, (_, i) => ((gid[2 * i] ?? 0) << 8) | (gid[2 * i + 1] ?? 0))
  let best = { base: -1, len: 0 }
  let cur = { base: -1, len: 0 }
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && words[i] === 0) {
      cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 }
    } else if (cur.base !== -1) {
      if (best.base === -1 || cur.len > best.len) best = cur
      cur = { base: -1, len: 0 }
    }
  }
  if (best.len < 2) best = { base: -1, len: 0 }
  let out = ''
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':'
      continue
    }
    if (i !== 0) out += ':'
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && words[5] === 0xffff))) {
      out += [...gid.subarray(12, 16)].join('.')
      return out
    }
    out += words[i]!.toString(16)
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':'
  return out
}


/**
 * Where to send RoCEv2 packets for the peer's GID, given the local address softroce is bound to:
 * refuses the GID :: (a peer that sent none; `hint` says how to make it send one) and a GID of
 * the other IP family than the local address.
 */
export function peerRoceAddress(gid: Uint8Array, localAddress: string, hint: string): string {
  if (gid.every((b) => b === 0)) throw Object.assign(new Error(`the peer sent GID :: (no GID): RoCE needs one; ${hint}`), { code: 'ERR_NO_GID' })
  const peer = gidToAddress(gid)
  const family = localAddress.includes(':') ? 6 : 4
  if (peer.family !== family) {
    throw Object.assign(new Error(`the peer's GID ${formatGid(gid)} is IPv${peer.family} but the local address ${localAddress} is IPv${family}: pass --address with an IPv${peer.family} address`), { code: 'ERR_GID_FAMILY' })
  }
  return peer.address
}
