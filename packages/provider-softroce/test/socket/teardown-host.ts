// Bundled and run by teardown.test.ts in a child process: devices left open when a worker thread
// calls process.exit, when a worker is terminated, and when the main thread exits. The native
// receive path must close its socket watcher before node unloads the addon (a segfault otherwise).
import { Worker, isMainThread, workerData } from 'node:worker_threads'
import { createContext } from '@rdma-session/core'
import { softroce } from '../../src/index.js'

async function openDevice(): Promise<string> {
  const ctx = await createContext({ provider: softroce({ port: 0 }) })
  return (ctx.device as unknown as { diagnostics: { receivePath: string } }).diagnostics.receivePath
}

if (isMainThread) {
  const run = async (mode: 'exit' | 'terminate'): Promise<number> => {
    const w = new Worker(new URL(import.meta.url), { workerData: mode })
    const path = await new Promise<string>((resolve) => w.once('message', resolve))
    if (mode === 'terminate') void w.terminate()
    const code = await new Promise<number>((resolve) => w.once('exit', resolve))
    console.log(`worker ${mode}: receive path ${path}, exit code ${code}`)
    return code
  }
  const exited = await run('exit')
  const terminated = await run('terminate')
  console.log(`main: receive path ${await openDevice()}; exiting with the device open`)
  process.exit(exited === 0 && terminated === 1 ? 0 : 3)
} else {
  const { parentPort } = await import('node:worker_threads')
  parentPort!.postMessage(await openDevice())
  if (workerData === 'exit') process.exit(0)
}
