#!/usr/bin/env bash
# Runs inside the rxe guest (cwd = the repo, shared read-only; node = the host's, via 9p):
#   guest/run-in-guest.sh conformance   the conformance suite, the verbs extras and the fast-path tests through provider-verbs (vitest)
#   guest/run-in-guest.sh cycles [N]    N create/destroy cycles of PD/MR/CQ/QP with RSS (default 10000)
#   guest/run-in-guest.sh bench         8 B WRITE latency and 64 KiB WRITE bandwidth vs perftest
#   guest/run-in-guest.sh all           conformance, then cycles
# Every part prints a line `GUEST-RESULT <json>` that test/guest.test.ts parses.
set -uo pipefail
PKG="$(cd "$(dirname "$0")/.." && pwd)"
export TMPDIR=/tmp XDG_CACHE_HOME=/tmp/cache VITEST_CACHE_DIR=/tmp/vitest-cache NODE_OPTIONS="${NODE_OPTIONS:-}"
# The guest's initramfs carries node's own libraries; native bindings of the test tooling
# (rolldown, used by vitest) also need librt.so.1, which test/guest.test.ts puts in .guest-lib.
[ -d "$PKG/.guest-lib" ] && export LD_LIBRARY_PATH="$PKG/.guest-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ulimit -l unlimited 2>/dev/null || true
ulimit -n 65536 2>/dev/null || true
cd "$PKG"

conformance() {
  local t0=${EPOCHREALTIME/./}
  local out=/tmp/conformance.json
  local rc attempt
  # vitest gives its pool worker a fixed 60 s to start; loading vitest over 9p in a TCG guest on a
  # busy host can take longer, so a start timeout is retried. So is a run that ended without
  # writing its report (vitest gone before any test ran; once in CI it printed only its banner),
  # with the kernel's last words, in case it was killed.
  for attempt in 1 2 3; do
    rm -f "$out"
    node ../../node_modules/vitest/vitest.mjs run --config guest/vitest.config.mjs --configLoader runner \
      --reporter=default --reporter=json --outputFile.json="$out" guest/conformance.test.ts guest/verbs-extras.test.ts guest/fast-path.test.ts 2>&1 | tee /tmp/conformance.log
    rc=${PIPESTATUS[0]}
    if grep -q 'Failed to start .* worker\|Timeout starting .* runner' /tmp/conformance.log; then
      echo "run-in-guest: vitest's worker did not start in time (attempt $attempt); retrying" >&2
    elif [ ! -s "$out" ]; then
      echo "run-in-guest: vitest exited ($rc) without a report (attempt $attempt); retrying. dmesg:" >&2
      dmesg 2>/dev/null | tail -5 >&2
    else
      break
    fi
  done
  local ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
  node -e '
    const fs = require("fs"); let r = {}; try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")) } catch {}
    const failed = (r.testResults ?? []).flatMap((f) => f.assertionResults.filter((a) => a.status === "failed").map((a) => ({ name: a.fullName, message: (a.failureMessages ?? []).join("\n").slice(0, 600) })))
    const log = fs.readFileSync("/tmp/conformance.log", "utf8").replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "")
    const startup = (r.numPassedTests ?? 0) === 0 ? log.slice(-2500) : undefined
    const status = (a) => (a.status === "passed" || a.status === "failed" ? a.status : "skipped")
    const tests = (r.testResults ?? []).flatMap((f) => f.assertionResults.map((a) => ({ name: a.fullName, status: status(a), ...(a.status === "failed" ? { message: (a.failureMessages ?? []).join("\n").slice(0, 600) } : {}) })))
    console.log("GUEST-RESULT " + JSON.stringify({ part: "conformance", exit: Number(process.argv[2]), ms: Number(process.argv[3]), passed: r.numPassedTests ?? 0, failed: r.numFailedTests ?? 0, skipped: (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0), failures: failed, tests, startup }))
  ' "$out" "$rc" "$ms"
  return $rc
}

cycles() { node --expose-gc guest/create-destroy-cycles.mjs "${1:-10000}"; }
bench() { node bench/write-bench.mjs; }

case "${1:-all}" in
  conformance) conformance ;;
  cycles) cycles "${2:-10000}" ;;
  bench) bench ;;
  all) conformance; c=$?; cycles "${2:-10000}"; d=$?; [ $c -eq 0 ] && [ $d -eq 0 ] ;;
  *) echo "usage: $0 conformance|cycles [N]|bench|all" >&2; exit 2 ;;
esac
