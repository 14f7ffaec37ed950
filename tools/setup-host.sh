#!/usr/bin/env bash
# setup-host.sh - install and build what the test suites need on this machine, so `pnpm test` runs
# every suite on a freshly installed Debian/Ubuntu machine. Run as root; idempotent (about a
# second when everything is in place). `pnpm test` runs it first (tools/run-tests.mjs).
#   1. apt packages of the wire, netns and directory tests: tshark, nftables, iproute2, etcd-server;
#      fonts-dejavu-core for the CLI chart test (resvg draws its text with a system font)
#   2. the rxe guest (tools/rxe-vm/build.sh: QEMU, rdma-core, perftest, libibverbs-dev, librdmacm-dev, gcc, and
#      Debian's kernel .deb, downloaded and extracted but never installed)
#   3. the native helpers: provider-softroce's socket helper, provider-verbs' addon (needs
#      libibverbs-dev and librdmacm-dev from step 2): the prebuilt binaries when pnpm build has made them, else built
# A failed step prints its name, the command, its exit code and the last lines of its output.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/tools/setup-lib.sh"
mkdir -p "${RDMA_SESSION_CACHE:-$HOME/.cache/rdma-session}"
setup_begin "setup-host" "${RDMA_SESSION_CACHE:-$HOME/.cache/rdma-session}/setup-host.log"
say() { echo "[setup-host] $*" >&2; }

setup_step "test packages (apt)"
PKGS=(tshark nftables iproute2 etcd-server fonts-dejavu-core)
missing=($(missing_packages "${PKGS[@]}"))
if ((${#missing[@]})); then
  # tshark's package asks whether non-root users may capture: answer no, without a prompt.
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
  install_packages "${missing[@]}"
fi

setup_step "rxe guest (tools/rxe-vm/build.sh)"
"$ROOT/tools/rxe-vm/build.sh"

setup_step "native helpers"
# A prebuilt binary that loads here (pnpm build makes them with prebuildify) is enough; else build.
node "$ROOT/packages/provider-softroce/native/build.mjs" --prefer-prebuilt
node "$ROOT/packages/provider-verbs/scripts/build-addon.cjs" --prefer-prebuilt --if-needed --strict
say "ready: packages, rxe guest and native helpers are in place"
