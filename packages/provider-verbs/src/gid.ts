/** GIDs and addresses: text <-> 16-byte GID, and choosing the RoCEv2 GID a device uses. */
import { isIPv4, isIPv6 } from 'node:net'
import { InvalidArgumentError } from '@rdma-session/provider-interface'
import type { NativeGidEntry } from './native.js'

/** A 16-byte GID for an IPv4 (as ::ffff:a.b.c.d) or IPv6 address; throws for anything else. */
export function addressToGid(address: string): Uint8Array {
  const gid = new Uint8Array(16)
  if (isIPv4(address)) {
    gid[10] = 0xff
    gid[11] = 0xff
    address.split('.').forEach((o, i) => (gid[12 + i] = Number(o)))
    return gid
  }
  if (!isIPv6(address)) throw new InvalidArgumentError(`'${address}' is not an IPv4 or IPv6 address`, { address })
  let text = address.split('%')[0]!
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4 !== null) {
    const o = v4[1]!.split('.').map(Number)
    text = text.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t]
  groups.forEach((g, i) => {
    const v = parseInt(g, 16)
    gid[i * 2] = v >> 8
    gid[i * 2 + 1] = v & 0xff
  })
  return gid
}

export function isIpv4Mapped(gid: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (gid[i] !== 0) return false
  return gid[10] === 0xff && gid[11] === 0xff
}

export function isLinkLocal(gid: Uint8Array): boolean {
  return gid[0] === 0xfe && (gid[1]! & 0xc0) === 0x80
}

/** The GID as IPv6 text (RFC 5952 compressed; IPv4-mapped as ::ffff:a.b.c.d). */
export function gidToText(gid: Uint8Array): string {
  if (isIpv4Mapped(gid)) return `::ffff:${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}`
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((gid[i]! << 8) | gid[i + 1]!).toString(16))
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)
}

/** The address peers use for this GID: dotted quad for IPv4-mapped GIDs, IPv6 text otherwise. */
export function gidToAddress(gid: Uint8Array): string {
  return isIpv4Mapped(gid) ? `${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}` : gidToText(gid)
}

export function sameGid(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false
  return true
}

const isZero = (gid: Uint8Array): boolean => gid.every((b) => b === 0)

export interface GidChoice {
  /** Preferred GID index. */
  readonly gidIndex?: number
  /** Only 'roce-v2' is supported. */
  readonly gidType?: 'roce-v2'
  /** Use the GID of this address. */
  readonly address?: string
}

function describe(entries: readonly NativeGidEntry[]): string {
  return entries.map((e) => `  port ${e.port} index ${e.index}: ${gidToText(e.gid)} (${e.type})`).join('\n') || '  (empty)'
}

/**
 * Picks the GID a device uses on `port`: the one at `gidIndex`, or the one of `address`, or else the first
 * RoCEv2 IPv4-mapped GID, then the first global IPv6 one, then a link-local one. Returns null when the
 * port has no RoCEv2 GID at all; throws InvalidArgumentError when the requested index/address is not usable.
 */
export function selectGid(entries: readonly NativeGidEntry[], port: number, choice: GidChoice = {}): NativeGidEntry | null {
  const type = choice.gidType ?? 'roce-v2'
  if (type !== 'roce-v2') throw new InvalidArgumentError(`gidType '${String(type)}' is not supported; only 'roce-v2'`)
  const onPort = entries.filter((e) => e.port === port && !isZero(e.gid))
  const v2 = onPort.filter((e) => e.type === 'roce-v2')
  if (choice.gidIndex !== undefined) {
    const e = onPort.find((x) => x.index === choice.gidIndex)
    if (e === undefined || e.type !== 'roce-v2') {
      throw new InvalidArgumentError(`GID index ${choice.gidIndex} on port ${port} is not a RoCEv2 GID; the table is:\n${describe(onPort)}`, { gidIndex: choice.gidIndex })
    }
    return e
  }
  if (choice.address !== undefined) {
    const want = addressToGid(choice.address)
    const e = v2.find((x) => sameGid(x.gid, want))
    if (e === undefined) {
      throw new InvalidArgumentError(`no RoCEv2 GID for address ${choice.address} on port ${port}; the table is:\n${describe(onPort)}`, { address: choice.address })
    }
    return e
  }
  return v2.find((e) => isIpv4Mapped(e.gid)) ?? v2.find((e) => !isLinkLocal(e.gid)) ?? v2[0] ?? null
}

/**
 * The RoCEv2 GID on `port` a QP to `remote` sends from: same family (IPv4-mapped or IPv6) and same
 * scope (a link-local remote from a link-local GID, a global one from a global GID), preferring
 * `preferred`. Null when the device has none.
 */
export function gidForRemote(entries: readonly NativeGidEntry[], port: number, preferred: NativeGidEntry, remote: Uint8Array): NativeGidEntry | null {
  const v4 = isIpv4Mapped(remote)
  const linkLocal = !v4 && isLinkLocal(remote)
  const fits = (g: Uint8Array): boolean => isIpv4Mapped(g) === v4 && (v4 || isLinkLocal(g) === linkLocal)
  if (fits(preferred.gid)) return preferred
  return entries.find((e) => e.port === port && e.type === 'roce-v2' && !isZero(e.gid) && fits(e.gid)) ?? null
}
