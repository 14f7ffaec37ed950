// TypeScript consumer (ESM types, the "import" condition): checked with tsc --noEmit, strict.
import { createContext, isRdmaError, type Context, type Session, type SessionStats, type RemoteRegion, type Provider, type WorkCompletion } from '@rdma-session/core'
import { mock, MockFabric } from '@rdma-session/provider-mock'

const provider: Provider = mock({ fabric: new MockFabric() })
const a: Context = await createContext({ provider })
const b: Context = await createContext({ provider })
const region: RemoteRegion = b.registerMemory(new Uint8Array(64), { access: ['local-write', 'remote-write'] }).region()
const session: Session = await a.sessions.create({ peer: b, qps: [{ qos: { class: 'latency', serviceLevel: 3 } }] })
const id: string | undefined = a.sessions.query({ remote: session.remote })
const wc: WorkCompletion = await session.qps[0]!.write(a.registerMemory(new Uint8Array(64)).slice(), region)
const stats: SessionStats = session.stats()
const p99: number = stats.session.latency.p99Micros
// @ts-expect-error: access flags are a closed set of names
a.registerMemory(new Uint8Array(8), { access: ['remote-everything'] })
export const summary = { id, status: wc.status, p99, failed: (e: unknown) => isRdmaError(e, 'ERR_SESSION_NOT_FOUND') }
