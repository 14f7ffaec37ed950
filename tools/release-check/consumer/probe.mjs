// Opens one device of the provider named in argv[2]; exit 0 if it works here, 3 (with the
// reason on stdout) if the provider says it cannot run on this machine.
import { createContext } from '@rdma-session/core'

try {
  const ctx = await createContext({ provider: process.argv[2] })
  console.log(`usable: ${ctx.provider.name} device ${ctx.info.name} at ${ctx.info.address}:${ctx.info.port}`)
  await ctx.close()
} catch (err) {
  console.log(`unavailable: ${err.code ?? err.name}: ${err.message.split('\n')[0]}`)
  process.exit(3)
}
