// CommonJS consumer of the published packages: require(), a session, a write, a read back.
const { createContext, isRdmaError } = require('@rdma-session/core')
const { mock, MockFabric } = require('@rdma-session/provider-mock')

async function main() {
  const fabric = new MockFabric()
  const a = await createContext({ provider: mock({ fabric }) })
  const b = await createContext({ provider: mock({ fabric }) })
  const target = b.registerMemory(Buffer.alloc(4096), { access: ['local-write', 'remote-read', 'remote-write'] })
  b.sessions.expose('data', target.region())
  const session = await a.sessions.create({ peer: b, qps: [{ qos: { class: 'latency' } }, { qos: { class: 'bulk' } }] })
  target.bytes.set(Buffer.from('from cjs'), 100)
  const local = a.registerMemory(Buffer.alloc(4096))
  await session.read(local.slice(), session.remoteRegions.get('data'), { chunkSize: 1024 })
  const text = Buffer.from(local.bytes.subarray(100, 108)).toString()
  let closed = false
  await session.close()
  try {
    await session.addQps([{}])
  } catch (err) {
    closed = isRdmaError(err, 'ERR_SESSION_CLOSED')
  }
  await a.close()
  await b.close()
  console.log(`cjs: striped read ${text === 'from cjs' ? 'ok' : 'BAD'}, errors ${closed ? 'ok' : 'BAD'}`)
  if (text !== 'from cjs' || !closed) process.exit(1)
}
main().catch((err) => {
  console.error(err)
  process.exit(1)
})
