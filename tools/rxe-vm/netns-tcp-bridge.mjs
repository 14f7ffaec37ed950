// netns-tcp-bridge.mjs - connect to HOST:PORT (retrying until the deadline) and pipe the TCP stream
// to stdin/stdout. index.mjs runs it under `ip netns exec NS` so that a test in the root netns can
// talk to a program in the guest (10.77.0.2 exists only inside the netns).
//   node netns-tcp-bridge.mjs HOST PORT TIMEOUT_MS
// stderr: "connected" once the connection is up, or "bridge: ..." and exit 1 on failure.
import net from 'node:net'

const [host, port, timeoutMs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] ?? 30000)]
const deadline = Date.now() + timeoutMs

function attempt() {
  const sock = net.connect({ host, port })
  let up = false
  sock.setNoDelay(true)
  sock.once('connect', () => {
    up = true
    process.stderr.write('connected\n')
    process.stdin.pipe(sock)
    sock.pipe(process.stdout)
    process.stdin.on('end', () => sock.end())
  })
  sock.on('error', (err) => {
    if (up) {
      process.stderr.write(`bridge: ${err.message}\n`)
      process.exit(1)
    }
    sock.destroy()
    if (Date.now() >= deadline) {
      process.stderr.write(`bridge: cannot connect to ${host}:${port} within ${timeoutMs} ms (${err.code ?? err.message})\n`)
      process.exit(1)
    }
    setTimeout(attempt, 100)
  })
  sock.on('close', () => {
    if (up) process.exit(0)
  })
}
attempt()
