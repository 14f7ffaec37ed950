// Without the native helper openRoceSocket still works (plain dgram) and says what is lost and
// how to fix it. The helper is made unavailable with RDMA_SESSION_SOFTROCE_NATIVE=off (disabled)
// or RDMA_SESSION_SOFTROCE_NATIVE_PATH pointing at a missing file (not built).
import { isRdmaError } from '@rdma-session/core'
import { afterEach, describe, expect, it } from 'vitest'
import { openRoceSocket, type RoceSocket } from '../../src/socket/roce-socket.js'
import { DISABLE_ENV, PATH_ENV, findPackageRoot, loadSockoptAddon, resetSockoptAddon } from '../../src/socket/sockopt-addon.js'
import { packageRoot } from './helpers.js'

const open: RoceSocket[] = []
const saved = { [DISABLE_ENV]: process.env[DISABLE_ENV], [PATH_ENV]: process.env[PATH_ENV] }
afterEach(() => {
  for (const s of open.splice(0)) s.socket.close()
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
  resetSockoptAddon()
})
const withEnv = (vars: Record<string, string>): void => {
  Object.assign(process.env, vars)
  resetSockoptAddon()
}

describe('openRoceSocket without the native helper', () => {
  it('disabled (RDMA_SESSION_SOFTROCE_NATIVE=off), IPv4: helper none, the ICRC loss, the fix', async () => {
    withEnv({ [DISABLE_ENV]: 'off' })
    const s = await openRoceSocket({ family: 4, address: '127.0.0.1', port: 0 })
    open.push(s)
    expect(s.helper).toBe('none')
    expect(s.interop).toEqual({ pmtudiscDo: false, noCheck6Rx: false, wireCompatible: false })
    expect(s.port).toBeGreaterThan(0)
    expect(s.reason).toContain('disabled by RDMA_SESSION_SOFTROCE_NATIVE=off')
    expect(s.reason).toContain('IPv4 packets sent to kernel rxe or RoCE NICs will be dropped for a bad ICRC')
    expect(s.reason).toContain('unset RDMA_SESSION_SOFTROCE_NATIVE')
  })

  it('not built, IPv6: helper none, the kernel drops rxe packets, build:native with python3, make, g++', async () => {
    withEnv({ [PATH_ENV]: '/nonexistent/roce_sockopt.node' })
    const s = await openRoceSocket({ family: 6, address: '::1', port: 0 })
    open.push(s)
    expect(s.helper).toBe('none')
    expect(s.interop.wireCompatible).toBe(false)
    expect(s.reason).toContain('it is not built (/nonexistent/roce_sockopt.node is missing)')
    expect(s.reason).toContain("IPv6 packets from kernel rxe will be dropped by this host's kernel")
    expect(s.reason).toContain('`pnpm --filter @rdma-session/provider-softroce build:native` (needs python3, make and g++)')
    // still a working socket
    const got = new Promise<string>((resolve) => s.socket.once('message', (m) => resolve(m.toString())))
    s.socket.send('plain', s.port, '::1')
    expect(await got).toBe('plain')
  })

  it('a netns socket needs the helper: UNSUPPORTED error naming the fix', async () => {
    withEnv({ [DISABLE_ENV]: '0' })
    const err = await openRoceSocket({ family: 4, address: '10.77.0.1', port: 4791, netns: 'anything' }).catch((e: unknown) => e)
    expect(isRdmaError(err, 'ERR_UNSUPPORTED')).toBe(true)
    expect((err as Error).message).toMatch(/needs the native socket-options helper.*build:native/)
  })

  it('argument errors before anything is opened', async () => {
    await expect(openRoceSocket({ family: 4, address: '::1', port: 0 })).rejects.toThrow(/must be an IPv4 address/)
    await expect(openRoceSocket({ family: 6, address: 'localhost', port: 0 })).rejects.toThrow(/must be an IPv6 address/)
    await expect(openRoceSocket({ family: 4, address: '127.0.0.1', port: -1 })).rejects.toThrow(/port must be 0-65535/)
    await expect(openRoceSocket({ family: 5 as 4, address: '127.0.0.1', port: 0 })).rejects.toThrow(/family must be 4 or 6/)
  })

  it('the loader finds the package root from the sources (as from dist/)', () => {
    expect(findPackageRoot()).toBe(packageRoot)
    withEnv({ [DISABLE_ENV]: 'off' })
    expect(loadSockoptAddon()).toMatchObject({ loaded: false, why: expect.stringContaining('disabled') })
  })
})
