// What a test needs from its environment (root, QEMU, the rxe guest, a built addon, tshark, netns):
// on a developer's machine a missing requirement skips the suite with the reason printed; in CI
// (CI=1) it is a failure with that reason, since CI installs and starts everything the tests need.
// Skips by a provider's declared capability do not come here (the conformance suite has its own).

/**
 * `reason`: null or '' when the suite can run, else why it cannot. Returns the reason to skip with
 * (false when it can run); throws under CI=1, which fails the test file with the reason.
 */
export function environmentSkip(suite, reason) {
  if (!reason) return false
  if (inCi()) {
    throw new Error(`${suite}: CI must run this suite, but the environment lacks what it needs: ${reason}`)
  }
  console.warn(`[${suite}] skipped (environment): ${reason}`)
  return reason
}

/** True when running under CI (CI set to anything but 0/false/empty). */
export function inCi() {
  const v = process.env.CI ?? ''
  return v !== '' && !/^(0|false|no)$/i.test(v)
}
