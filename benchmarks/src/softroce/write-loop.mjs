/**
 * RDMA WRITEs of `size` bytes from `src` (a memory region) to the remote region (`remoteAddr`,
 * `rkey`), cycling over `slots` slots of both, `depth` in flight, posted on `qp` and polled from its
 * send CQ, until `n` have completed or `deadlineMs` has passed (what is in flight then still
 * completes). Returns the bytes written and the time taken.
 */
export async function pipelinedWrites({ qp, src, remoteAddr, rkey, size, n, depth, slots, deadlineMs = Infinity }) {
  const cq = qp.sendCq
  let posted = 0
  let done = 0
  const post = () => {
    const off = (posted % slots) * size
    qp.postSend({ wrId: posted, opcode: 'RDMA_WRITE', sgList: [src.slice(off, size).toSge()], remoteAddr: remoteAddr + off, rkey })
    posted++
  }
  const t0 = performance.now()
  const stop = t0 + deadlineMs
  while (posted < Math.min(n, depth)) post()
  while (done < posted) {
    const wcs = cq.poll(64)
    if (wcs.length === 0) {
      await cq.waitReady()
      continue
    }
    for (const wc of wcs) {
      if (wc.status !== 'SUCCESS') throw new Error(`WRITE failed: ${wc.status}`)
      done++
      if (posted < n && performance.now() < stop) post()
    }
  }
  return { bytes: done * size, ms: performance.now() - t0 }
}
