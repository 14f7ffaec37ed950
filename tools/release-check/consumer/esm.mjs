// ESM consumer of the published packages: named imports, a session, a write, a read back.
import { createContext, isRdmaError, SessionNotFoundError } from '@rdma-session/core'
import { mock, MockFabric } from '@rdma-session/provider-mock'

const fabric = new MockFabric()
const a = await createContext({ provider: mock({ fabric }) })
const b = await createContext({ provider: mock({ fabric }) })
const target = b.registerMemory(Buffer.alloc(4096), { access: ['local-write', 'remote-read', 'remote-write'] })
b.sessions.expose('data', target.region())
const session = await a.sessions.create({ peer: b, params: { encryption: 'aes-256-gcm' }, qps: [{ qos: { class: 'latency' } }] })
const src = a.registerMemory(Buffer.alloc(4096, 7))
await session.qps[0].write(src.slice(0, 4096), session.remoteRegions.get('data'))
const same = Buffer.from(target.bytes).equals(Buffer.alloc(4096, 7))
let notFound = false
try {
  await a.sessions.addQps('0'.repeat(32), [{}], { remote: session.remote })
} catch (err) {
  notFound = isRdmaError(err, 'ERR_SESSION_NOT_FOUND') && err instanceof SessionNotFoundError
}
await a.close()
await b.close()
console.log(`esm: session ${session.id.length === 32 ? 'ok' : 'BAD'}, write ${same ? 'ok' : 'BAD'}, errors ${notFound ? 'ok' : 'BAD'}`)
if (!same || !notFound) process.exit(1)
