import { Etcd3 } from 'etcd3'
const url = 'http://127.0.0.1:23791'
const b64 = (s) => Buffer.from(s).toString('base64')
async function gw(path, body) { const r = await fetch(url + path, { method: 'POST', body: JSON.stringify(body) }); return r.json() }
const N = 2000
let t = performance.now(); await gw('/v3/kv/put', { key: b64('k'), value: b64('v'.repeat(600)) })
t = performance.now(); for (let i = 0; i < N; i++) await gw('/v3/kv/range', { key: b64('k') }); const gwGet = (performance.now() - t) / N
t = performance.now(); for (let i = 0; i < N; i++) await gw('/v3/kv/put', { key: b64('k' + i), value: b64('v'.repeat(600)) }); const gwPut = (performance.now() - t) / N
const c = new Etcd3({ hosts: url })
await c.get('k').string()
t = performance.now(); for (let i = 0; i < N; i++) await c.get('k').string(); const e3Get = (performance.now() - t) / N
t = performance.now(); for (let i = 0; i < N; i++) await c.put('j' + i).value('v'.repeat(600)); const e3Put = (performance.now() - t) / N
console.log({ gwGet, gwPut, e3Get, e3Put })
c.close()
