/** A progress bar on standard error: redrawn in place on a terminal, one line per step otherwise. */
export function progressBar(write: (t: string) => void, isTty: boolean, width = 30): (done: number, total: number, label: string) => void {
  return (done, total, label) => {
    const filled = Math.round((done / Math.max(1, total)) * width)
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(done).padStart(String(total).length)}/${total} ${label}`
    if (isTty) write(`\r\x1b[K${bar}${done >= total ? '\n' : ''}`)
    else write(`${bar}\n`)
  }
}
