#!/usr/bin/env bash
# build.sh - build the rxe-vm guest: Debian's stock kernel (uncompressed vmlinux, booted via PVH),
# a busybox initramfs with rdma_rxe, rdma-core userspace, perftest and our /init, plus the guest
# programs (guest-programs/*.c, built on the host against libibverbs).
#
# Idempotent: apt packages are installed only when missing, the kernel .deb is downloaded and
# extracted once per version, and the initramfs and programs are rebuilt only when an input
# changed (this script, guest-init.sh, guest-programs/*, package versions, node). --force
# rebuilds them anyway. Prints the time of each stage.
#
# Output: ${RXE_VM_DIR:-$HOME/.cache/rdma-session/rxe-vm}: vmlinux, initramfs.cpio, bin/rc_peer,
# kernel-version, stamp.   Env: RXE_VM_DIR, RXE_VM_KPKG (pin a linux-image-* package).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../setup-lib.sh"
OUT=${RXE_VM_DIR:-$HOME/.cache/rdma-session/rxe-vm}
FORCE=0
case ${1:-} in
  --force) FORCE=1;;
  '') ;;
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
  *) echo "build.sh: unknown argument $1 (only --force)" >&2; exit 2;;
esac
mkdir -p "$OUT"
T0=$EPOCHREALTIME TS=$EPOCHREALTIME
# One build at a time per cache dir (test files may call ensureBuilt() in parallel).
exec 9> "$OUT/.build.lock"
flock 9
# A failure names its step, command, exit code and last lines of output (setup-lib.sh).
setup_begin "rxe-vm build" "$OUT/build.log"
log() { echo "[rxe-vm build] $*" >&2; }
lap() { # name: print how long the stage took
  local now=$EPOCHREALTIME
  log "$(awk -v a="$TS" -v b="$now" -v n="$1" 'BEGIN { printf "%-22s %6.2f s", n, b - a }')"
  TS=$now
}

# 1. Host packages. The kernel is only downloaded and extracted (never installed), so the host's
# bootloader is left alone. gcc/libc6-dev build the guest programs.
PKGS=(qemu-system-x86 busybox-static cpio xz-utils kmod iproute2 rdma-core ibverbs-utils
      ibverbs-providers perftest rdmacm-utils libibverbs-dev librdmacm-dev gcc libc6-dev)
setup_step "host packages"
missing=($(missing_packages "${PKGS[@]}"))
if ((${#missing[@]})); then
  log "missing: ${missing[*]}"
  install_packages "${missing[@]}"
fi
# RXE_VM_STOP_AFTER=packages: stop here (the package detection test uses it with PATH shims).
[ "${RXE_VM_STOP_AFTER:-}" != packages ] || { lap "host packages"; exit 0; }
lap "host packages"

# 2. Kernel: the linux-image-*-amd64 that linux-image-amd64 points to (override: RXE_VM_KPKG).
# apt-cache takes ~1 s without a pkgcache, so the answer is kept until the apt lists change.
setup_step "kernel package"
kpkg() { { apt-cache depends linux-image-amd64 2>/dev/null || true; } | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
KPKG=${RXE_VM_KPKG:-}
if [ -z "$KPKG" ] && [ -s "$OUT/kernel-package" ] &&
   [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -newer "$OUT/kernel-package" 2>/dev/null)" ]; then
  KPKG=$(cat "$OUT/kernel-package")
fi
[ -n "$KPKG" ] || { KPKG=$(kpkg); [ -z "$KPKG" ] || echo "$KPKG" > "$OUT/kernel-package"; }
[ -n "$KPKG" ] || { apt-get update -qq >&2; KPKG=$(kpkg); }
[ -n "$KPKG" ] || { log "cannot find a linux-image-*-amd64 package"; exit 1; }
KVER=${KPKG#linux-image-}
KDIR=$OUT/kernel-$KVER            # vmlinux + the modules we need + their load order
STAGE= ROOT=
trap 'rm -rf ${STAGE:+"$STAGE"} ${ROOT:+"$ROOT"}' EXIT
if [ ! -s "$KDIR/vmlinux" ] || [ ! -s "$KDIR/load-order" ]; then
  log "downloading and extracting $KPKG (not installed on the host)"
  STAGE=$(mktemp -d "$OUT/stage.XXXXXX")
  (cd "$STAGE" && apt-get download -q "$KPKG" >/dev/null 2>&1) ||
    { apt-get update -qq >&2; (cd "$STAGE" && apt-get download -q "$KPKG" >&2); }
  dpkg-deb -x "$STAGE"/"$KPKG"_*.deb "$STAGE/root"
  rm -rf "$KDIR.tmp"; mkdir -p "$KDIR.tmp/modules"
  # vmlinuz -> vmlinux (as scripts/extract-vmlinux does for an xz kernel): PVH boots the ELF,
  # and the TCG guest saves ~2 s of decompression per boot.
  VMLINUZ=$STAGE/root/boot/vmlinuz-$KVER
  off=$(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "$VMLINUZ" | head -1 | cut -d: -f1)
  [ -n "$off" ] || { log "no xz stream in $VMLINUZ"; exit 1; }
  xz -dc --single-stream < <(tail -c +$((off + 1)) "$VMLINUZ") > "$KDIR.tmp/vmlinux" || true
  [ "$(head -c4 "$KDIR.tmp/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] || { log "vmlinux extraction failed"; exit 1; }
  # The .deb ships no modules.dep: run depmod on the extracted tree, then take each module we
  # need with its dependencies, in load order.
  depmod -b "$STAGE/root" "$KVER"
  for m in virtio_pci virtio_net 9pnet_virtio 9p crc32_generic rdma_rxe rdma_ucm; do
    modprobe -d "$STAGE/root" -S "$KVER" --show-depends "$m"
  done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
    cp "$ko" "$KDIR.tmp/modules/"; basename "$ko" >> "$KDIR.tmp/load-order"
  done
  rm -rf "$KDIR"; mv "$KDIR.tmp" "$KDIR"
  rm -rf "$STAGE"; STAGE=
fi
ln -sfn "kernel-$KVER" "$OUT/kernel"
ln -sfn kernel/vmlinux "$OUT/vmlinux"
echo "$KVER" > "$OUT/kernel-version"
lap "kernel $KVER"

# 3. Up to date? The fingerprint covers every input of steps 4 and 5.
NODE=$(command -v node || true)
STAMP=$({ cat "$0" "$HERE/guest-init.sh" "$HERE"/guest-programs/*.c
          echo "$KVER"; dpkg-query -W "${PKGS[@]}" 2>/dev/null
          [ -z "$NODE" ] || { readlink -f "$NODE"; "$NODE" --version; }; } | sha256sum | cut -c1-64)
if ((!FORCE)) && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$STAMP" ] && [ -s "$OUT/initramfs.cpio" ] &&
   [ -x "$OUT/bin/rc_peer" ]; then
  lap "up to date"
  log "total $(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s; output in $OUT"
  exit 0
fi
rm -f "$OUT/stamp"

setup_step "guest programs"
# 4. Guest programs, built on the host (same glibc and libibverbs as the initramfs).
mkdir -p "$OUT/bin"
for src in "$HERE"/guest-programs/*.c; do
  name=$(basename "$src" .c)
  gcc -O2 -g -Wall -Wextra -Werror -std=gnu11 -o "$OUT/bin/$name.tmp" "$src" -libverbs
  mv "$OUT/bin/$name.tmp" "$OUT/bin/$name"
done
lap "guest programs"

setup_step "initramfs"
# 5. Initramfs root, merged-/usr like the host so ldd paths work unchanged.
ROOT=$(mktemp -d "$OUT/root.XXXXXX")
mkdir -p "$ROOT"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,usr/local/bin,usr/lib/modules,etc,proc,sys,dev,tmp,run,root,mnt}
ln -s usr/bin "$ROOT/bin"; ln -s usr/sbin "$ROOT/sbin"; ln -s usr/lib64 "$ROOT/lib64"; ln -s usr/lib "$ROOT/lib"
cp "$KDIR"/modules/*.ko "$KDIR/load-order" "$ROOT/usr/lib/modules/"

add_libs() { # FILE...: every shared library ldd reports, at the same path
  local lib
  for lib in $(ldd "$@" 2>/dev/null | grep -v ":$" | grep -o '/[^ ]*' | sort -u); do
    [ -e "$ROOT$lib" ] || install -D -m 755 "$(readlink -f "$lib")" "$ROOT$lib"
  done
}
add_bins() { # FILE...: copied to the same path, with their libraries
  local f
  for f in "$@"; do install -D -m "$(stat -c %a "$f")" "$(readlink -f "$f")" "$ROOT$f"; done
  add_libs "$@"
}
add_bins /usr/bin/bash /usr/bin/dash /usr/bin/ip /usr/bin/rdma \
  $(dpkg -L ibverbs-utils perftest rdmacm-utils | grep -E '^/usr/bin/[^/]+$')
# The rxe verbs provider is dlopen'ed (ldd cannot see it); only its driver file goes in.
add_bins /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav*.so
install -D -m 644 /etc/libibverbs.d/rxe.driver "$ROOT/etc/libibverbs.d/rxe.driver"
for f in "$OUT"/bin/*; do install -m 755 "$f" "$ROOT/usr/local/bin/"; done
add_libs "$OUT"/bin/*
# The host's node binary comes in over 9p (run.sh -n); its libraries are here.
[ -z "$NODE" ] || add_libs "$NODE"

# busybox provides mount, insmod, ... but not the shell: its ash runs its own applets (e.g. a
# limited `ip`) even when a real binary is in PATH, so sh is dash and commands run under bash.
cp /bin/busybox "$ROOT/usr/bin/busybox"
ln -s dash "$ROOT/usr/bin/sh"
for a in $(/bin/busybox --list-full); do
  case $a in sbin/*|usr/sbin/*) t=$ROOT/usr/sbin/${a##*/};; *) t=$ROOT/usr/bin/${a##*/};; esac
  [ -e "$ROOT/usr/bin/${a##*/}" ] || [ -e "$ROOT/usr/sbin/${a##*/}" ] || ln -s /usr/bin/busybox "$t"
done
install -m 755 "$HERE/guest-init.sh" "$ROOT/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\n' > "$ROOT/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n10.0.2.15 guest\n10.0.2.2 host\n10.77.0.2 guest-tap\n10.77.0.1 host-tap\n' > "$ROOT/etc/hosts"
ldconfig -r "$ROOT" 2>/dev/null || true
lap "initramfs tree"

# 6. Pack uncompressed: even gzip -1 costs the TCG guest ~0.35 s per boot.
(cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$OUT/initramfs.cpio.tmp"
mv "$OUT/initramfs.cpio.tmp" "$OUT/initramfs.cpio"
rm -rf "$ROOT"; ROOT=
echo "$STAMP" > "$OUT/stamp"
lap "pack"
log "kernel $KVER, $(wc -l < "$KDIR/load-order") modules; initramfs $(du -h --apparent-size "$OUT/initramfs.cpio" | cut -f1)," \
    "vmlinux $(du -hL --apparent-size "$OUT/vmlinux" | cut -f1); programs: $(cd "$OUT/bin" && echo *)"
log "total $(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s; output in $OUT"
