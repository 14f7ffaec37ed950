import { createContext } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { softroce } from '@rdma-session/provider-softroce'
const which = process.argv[2]
const fabric = new MockFabric()
const mk = () => which === 'mock' ? mock({ fabric }) : softroce({ port: 0 })
const a = await createContext({ provider: mk() })
const b = await createContext({ provider: mk() })
const target = b.registerMemory(Buffer.alloc(4096), { access: ['local-write', 'remote-write'] })
const session = await a.sessions.create({ peer: b, params: { encryption: 'none' }, qps: [{ caps: { maxSendWr: 64 } }] })
const [qp] = session.qps
const src = a.registerMemory(Buffer.alloc(4096))
const slice = src.slice(0, 8), region = target.region(0, 8)
async function run(OPS) { let posted = 0; const lane = async () => { while (posted < OPS) { posted++; await qp.write(slice, region) } }; await Promise.all(Array.from({ length: 16 }, lane)) }
await run(5000)
const t0 = performance.now(); await run(40000); const dt = performance.now() - t0
console.log(`${which}: ${(40000 / dt).toFixed(1)} k 8-byte WRITEs/s through core (16 in flight)`)
await a.close(); await b.close(); process.exit(0)
