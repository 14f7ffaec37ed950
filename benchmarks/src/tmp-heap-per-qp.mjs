import { createContext } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { softroce } from '@rdma-session/provider-softroce'
const which = process.argv[2]
const TOTAL = Number(process.argv[3] ?? 2000)
const gc = globalThis.gc
const mk = () => which === 'mock' ? mock({ fabric }) : softroce({ port: 0 })
const fabric = new MockFabric()
const a = await createContext({ provider: mk() })
const b = await createContext({ provider: mk() })
const spec = [{ qos: { class: 'bulk' }, caps: { maxSendWr: 16, maxRecvWr: 16 } }]
const warm = await a.sessions.create({ peer: b, params: { encryption: 'none' } })
for (let i = 0; i < 200; i++) await warm.addQps(spec)
await warm.close()
const session = await a.sessions.create({ peer: b, params: { encryption: 'none' } })
gc(); gc()
const h0 = process.memoryUsage().heapUsed
for (let i = session.size; i < TOTAL; i++) await session.addQps(spec)
gc(); gc()
const h1 = process.memoryUsage().heapUsed
const per = (h1 - h0) / (TOTAL - 1) / 2
// one 8-byte write on every QP, so lazily allocated state exists
const target = b.registerMemory(Buffer.alloc(4096), { access: ['local-write', 'remote-write'] })
const src = a.registerMemory(Buffer.alloc(4096))
for (const qp of session.qps) await qp.write(src.slice(0, 8), target.region(0, 8))
gc(); gc()
const h2 = process.memoryUsage().heapUsed
console.log(`${which}: ${TOTAL} QP pairs idle: ${(per / 1024).toFixed(2)} KiB per QP (both sides incl. core); after one WRITE each: ${((h2 - h0) / (TOTAL - 1) / 2 / 1024).toFixed(2)} KiB per QP`)
await a.close(); await b.close()
process.exit(0)
