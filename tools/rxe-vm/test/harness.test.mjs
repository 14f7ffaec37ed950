// Tests of the rxe-vm harness itself: build, boot with --tap, rxe2 and its GIDs, exit codes
// (passthrough, 124, 143), cleanup of netns/tap/qemu, and rc_peer driven from the host over the
// netns TCP bridge (two rc_peers in the guest, connected to each other over rxe2).
// Run: node --test tools/rxe-vm/test/   (root; ~1 min; skips with the reason when the host cannot)
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { RcPeerClient, RcPeerError, TAP, ensureBuilt, guestSupport, hostSupport, netnsExists, paths, startGuest } from '../index.mjs'
import { environmentSkip } from '../../test-env.mjs'

const support = hostSupport()
const skip = environmentSkip('rxe-vm harness', support.ok ? null : `rxe-vm cannot run here: ${support.reasons.join('; ')}`)
const isQemu = (pid) => {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'qemu-system-x86' } catch { return false }
}
const noTapInRootNetns = () => spawnSync('ip', ['link', 'show', 'rxetap0']).status !== 0
const sha256 = (b) => createHash('sha256').update(b).digest('hex')

test('guestSupport(): hostSupport()\'s reasons, else null or that the build is missing', () => {
  const why = guestSupport()
  if (!support.ok) assert.equal(why, support.reasons.join('; '))
  else if (why !== null) assert.match(why, /^rxe-vm is not built \(.*\); run tools\/rxe-vm\/build\.sh$/)
})

describe('rxe-vm harness', { skip, concurrency: false }, () => {
  before(async () => {
    const b = await ensureBuilt()
    console.log(`ensureBuilt: ${b.ms} ms (${b.dir})`)
  }, { timeout: 900_000 })

  test('ensureBuilt is idempotent and fast when up to date', { timeout: 120_000 }, async () => {
    const b = await ensureBuilt()
    assert.match(b.log, /up to date/)
    assert.ok(b.ms < 10_000, `took ${b.ms} ms`)
    assert.ok(existsSync(paths.rcPeer), 'rc_peer built into the cache dir')
    const help = execFileSync(paths.rcPeer, ['-h'], { encoding: 'utf8' })
    assert.match(help, /usage: rc_peer/)
    assert.equal(guestSupport(), null, 'built: tests that do not build may boot it')
  })

  test('--tap boot: rxe2 ACTIVE with GIDs fe80::..58 / ::ffff:10.77.0.2 / fd77::2, exit code passthrough, pingpong, cleanup', { timeout: 180_000 }, async () => {
    const t0 = Date.now()
    const g = await startGuest({
      timeoutMs: 150_000,
      command: `
        ibv_devinfo -d rxe2 | grep -E 'state:|active_mtu'
        for i in 0 1 2; do echo "gid$i $(cat /sys/class/infiniband/rxe2/ports/1/gids/$i) $(cat /sys/class/infiniband/rxe2/ports/1/gid_attrs/types/$i)"; done
        ip -br addr show dev eth2; ip -o link show dev eth2
        ibv_rc_pingpong -d rxe2 -g 1 -n 20 > /tmp/srv.log 2>&1 & srv=$!
        # The client retries while the server is not listening yet (no fixed head start): up to 60 s.
        for i in $(seq 1 300); do ibv_rc_pingpong -d rxe2 -g 1 -n 20 10.77.0.2 > /tmp/cli.log 2>&1; grep -q "Couldn't connect" /tmp/cli.log || break; sleep 0.2; done
        grep iters /tmp/cli.log; wait $srv && echo pingpong-ok
        exit 7`,
    })
    assert.ok(netnsExists(g.netns), 'netns exists once startGuest resolves')
    const addrs = execFileSync('ip', ['-n', g.netns, 'addr', 'show', 'dev', TAP.hostInterface], { encoding: 'utf8' })
    assert.match(addrs, /10\.77\.0\.1\/24/)
    assert.match(addrs, /fd77::1\/64/)
    await g.ready
    const tReady = Date.now() - t0
    const r = await g.exited
    console.log(`boot -> ready ${tReady} ms, total ${Date.now() - t0} ms; ${r.stderr.match(/timings: .*/)?.[0]}`)
    assert.equal(r.code, 7, r.output + r.stderr)
    assert.match(r.output, /state:\s+PORT_ACTIVE/)
    assert.match(r.output, /gid0 fe80:0000:0000:0000:5054:00ff:fe12:3458 RoCE v2/)
    assert.match(r.output, /gid1 0000:0000:0000:0000:0000:ffff:0a4d:0002 RoCE v2/)
    assert.match(r.output, /gid2 fd77:0000:0000:0000:0000:0000:0000:0002 RoCE v2/)
    // The link's flags, not its operstate: operstate is derived by the kernel's linkwatch some time
    // after carrier (UNKNOWN meanwhile); UP + LOWER_UP (carrier) is what makes the link work.
    assert.match(r.output, /eth2\s+\S+\s+10\.77\.0\.2\/24 fd77::2\/64/)
    assert.match(r.output, /eth2: <[^>]*\bUP\b[^>]*\bLOWER_UP\b[^>]*>/)
    assert.match(r.output, /pingpong-ok/)
    assert.ok(!netnsExists(g.netns), 'netns deleted')
    assert.ok(g.qemuPid > 0, 'qemu pid reported')
    assert.ok(!isQemu(g.qemuPid), 'qemu gone')
    assert.ok(noTapInRootNetns(), 'no tap device in the root netns')
  })

  // The panic guest must boot before it can panic: three TCG guests at once on a loaded 2-core host
  // took more than 100 s to boot it in CI, so its deadline is 300 s (the test ends when it panics).
  test('timeout -> 124, kill() -> 143, kernel panic -> 125: three guests at once, all cleaned up', { timeout: 400_000 }, async () => {
    const [slow, killed, panic] = await Promise.all([
      startGuest({ command: 'sleep 600', timeoutMs: 14_000 }),
      startGuest({ command: 'sleep 600', timeoutMs: 300_000 }),
      startGuest({ command: 'echo c > /proc/sysrq-trigger', timeoutMs: 300_000 }),
    ])
    assert.equal(new Set([slow.netns, killed.netns, panic.netns]).size, 3)
    await killed.ready
    const k = await killed.kill()
    assert.equal(k.code, 143)
    const s = await slow.exited
    assert.equal(s.code, 124, s.stderr)
    assert.match(s.stderr, /timeout after 14s/)
    const p = await panic.exited
    assert.equal(p.code, 125, p.stderr)
    assert.match(p.stderr, /guest ended without reporting an exit code/)
    for (const g of [slow, killed, panic]) {
      assert.ok(!netnsExists(g.netns), `netns ${g.netns} deleted`)
      if (g.qemuPid) assert.ok(!isQemu(g.qemuPid), `qemu ${g.qemuPid} gone`)
    }
    assert.ok(noTapInRootNetns())
  })

  test('an existing netns name is refused (exit 2) and left alone', { timeout: 30_000 }, async () => {
    const name = `rxevm-test-exists-${process.pid}`
    execFileSync('ip', ['netns', 'add', name])
    try {
      await assert.rejects(startGuest({ command: 'true', netns: name }), /exists already/)
      assert.ok(netnsExists(name), 'the foreign netns is still there')
    } finally {
      execFileSync('ip', ['netns', 'delete', name])
    }
  })

  test('kernelArgs (run.sh -k) reach the guest kernel: the TSC clocksource; bad characters are refused (exit 2)', { timeout: 400_000 }, async () => {
    const bad = spawnSync('bash', [paths.run, '-k', 'a;reboot', 'true'], { encoding: 'utf8' })
    assert.equal(bad.status, 2)
    assert.match(bad.stderr, /--kernel-args takes words of/)
    const g = await startGuest({ tap: false, timeoutMs: 300_000, kernelArgs: 'clocksource=tsc tsc=reliable', command: 'cat /proc/cmdline; echo "clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"' })
    const { code, output } = await g.exited
    assert.equal(code, 0, output)
    assert.match(output, /clocksource=tsc tsc=reliable/)
    assert.match(output, /^clocksource=tsc$/m)
  })

  describe('rc_peer in the guest, driven from the host', () => {
    let g
    const peers = {}
    after(async () => {
      await g?.kill()
    })

    test('boot with 4 rc_peers (IPv4 and IPv6 GIDs) and read their greetings', { timeout: 150_000 }, async () => {
      g = await startGuest({
        timeoutMs: 140_000,
        command: 'for p in 1 2; do rc_peer -l 1860$p -g 1 & done; for p in 3 4; do rc_peer -l 1860$p -g 2 -s 16384 & done; wait',
      })
      for (const [name, port] of [['a', 18601], ['b', 18602], ['c', 18603], ['d', 18604]]) {
        peers[name] = await RcPeerClient.open(await g.connect(port), { timeoutMs: 60_000 })
      }
      assert.equal(peers.a.hello.dev, 'rxe2')
      assert.equal(peers.a.hello.gid.toString('hex'), '00000000000000000000ffff0a4d0002')
      assert.equal(peers.c.hello.gid.toString('hex'), 'fd770000000000000000000000000002')
      assert.equal(peers.c.hello.len, 16384)
      assert.equal(peers.a.hello.mtu, 1024)
      assert.notEqual(peers.a.hello.qpn, peers.b.hello.qpn)
    })

    for (const [x, y, fam] of [['a', 'b', 'IPv4'], ['c', 'd', 'IPv6']]) {
      test(`${fam}: WRITE / READ / CMP_SWAP / FETCH_ADD / SEND between two rc_peers over rxe2`, { timeout: 60_000 }, async () => {
        const A = peers[x], B = peers[y]
        assert.ok(A && B, 'peers are up')
        assert.equal(await A.connectQp({ ...B.hello }), 'state=RTS')
        assert.equal(await B.connectQp({ ...A.hello }), 'state=RTS')

        // A writes 5000 bytes (5 packets at MTU 1024) of a pattern into B at offset 100.
        const pattern = Buffer.alloc(5000, 0).map((_, i) => (i * 7 + 3) & 0xff)
        await A.set(0, pattern.subarray(0, 2500))
        await A.set(2500, pattern.subarray(2500))
        assert.equal(await A.sha256(0, 5000), sha256(pattern))
        await A.write(0, 100, 5000)
        assert.equal(await B.sha256(100, 5000), sha256(pattern))
        assert.deepEqual(await B.dump(98, 6), Buffer.from([0, 0, ...pattern.subarray(0, 4)]))

        // A reads it back into another place.
        await A.read(6000, 100, 5000)
        assert.equal(await A.sha256(6000, 5000), sha256(pattern))

        // Atomics on B's 8 bytes at offset 0 (host byte order = little endian on x86).
        await B.set(0, Buffer.from('0100000000000000', 'hex'))
        assert.equal(await A.fadd(8000, 0, 41n), 1n)
        assert.deepEqual(await B.dump(0, 8), Buffer.from('2a00000000000000', 'hex'))
        assert.equal(await A.cas(8000, 0, 1n, 5n), 42n, 'CAS with a wrong compare returns the old value')
        assert.equal(await A.cas(8000, 0, 42n, 0x1122334455667788n), 42n)
        assert.deepEqual(await B.dump(0, 8), Buffer.from('8877665544332211', 'hex'))

        // SEND with immediate into a posted receive.
        await B.recv(4000, 64)
        await A.send(0, 64, { imm: 0xabcd })
        assert.deepEqual(await B.waitRecv(5000), { opcode: 'RECV', len: 64, loff: 4000, imm: 0xabcd })
        assert.deepEqual(await B.dump(4000, 64), pattern.subarray(0, 64))

        const c = await B.waitForCounters((x) => x.rcvd_pkts > 0 && x.sent_pkts > 0)
        assert.ok(c.rcvd_pkts > 0 && c.sent_pkts > 0, JSON.stringify(c))

        // A bad rkey: remote access error NAK, the QP goes to ERR.
        const err = await A.write(0, 0, 8, { rkey: 0x12345 }).catch((e) => e)
        assert.ok(err instanceof RcPeerError, String(err))
        assert.equal(err.status, 'remote access error')
        await A.quit()
        await B.quit()
      })
    }

    test('guest.run: a program in the netns to its end (code, stdout, stderr), SIGKILLed after timeoutMs', { timeout: 30_000 }, async () => {
      assert.ok(g, 'guest started')
      const r = await g.run('ip', ['-br', 'addr', 'show', 'dev', TAP.hostInterface])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /10\.77\.0\.1\/24/)
      const e = await g.run('sh', ['-c', 'echo out; echo err >&2; exit 3'])
      assert.deepEqual(e, { code: 3, signal: null, stdout: 'out\n', stderr: 'err\n' })
      const t0 = Date.now()
      const k = await g.run('sleep', ['30'], { timeoutMs: 300 })
      assert.equal(k.signal, 'SIGKILL')
      assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`)
    })

    test('the guest command ends with the rc_peers (exit 0), cleanup', { timeout: 60_000 }, async () => {
      assert.ok(g, 'guest started')
      // Peers a failed test left connected: QUIT them, so the guest's `wait` returns.
      await Promise.all(Object.values(peers).map((p) => p.quit().catch(() => {})))
      const r = await g.exited
      assert.equal(r.code, 0, r.output + r.stderr)
      assert.ok(!netnsExists(g.netns))
      assert.ok(!isQemu(g.qemuPid))
    })
  })
})
