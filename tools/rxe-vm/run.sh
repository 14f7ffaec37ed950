#!/usr/bin/env bash
# run.sh - boot the rxe-vm guest under QEMU TCG, run one shell command in it with rxe0 (and with
# --tap rxe2) up, stream the guest console, and exit with the command's exit code.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: run.sh [options] [--] 'shell command'     (run by bash in the guest, as root)
  -s, --share DIR       share host DIR at /mnt/host, read-only (the command's working dir)
  -w, --share-rw        make that share writable
  -T, --tap             fresh netns rxevm-PID holding tap rxetap0 = guest NIC eth2 (rxe2); host side
                        10.77.0.1/24 + fd77::1/64, guest 10.77.0.2/24 + fd77::2/64. qemu runs in
                        the netns, so its loopback ports (-f) are the netns's too
      --netns NAME      the same, with the netns named NAME (must not exist yet)
  -f, --fwd SPEC        slirp hostfwd on loopback, e.g. tcp:127.0.0.1:18515-:18515 (repeatable)
  -n, --node            the host's node binary as `node` in the guest (9p)
  -k, --kernel-args A   more guest kernel command line, e.g. 'clocksource=tsc tsc=reliable'
                        (TCG's default clocksource is the HPET: every clock read an emulated MMIO)
  -t, --timeout SEC     kill the guest after SEC seconds (default 300): exit code 124
  -v, --verbose         show kernel messages and the qemu command line
Env: RXE_VM_DIR (build output, default ~/.cache/rdma-session/rxe-vm), RXE_VM_MEM (MiB, 1024),
     RXE_VM_SMP (2)
Exit: the command's code; 124 timeout; 125 the guest ended without reporting a code (panic, ...);
      143 run.sh got SIGTERM/SIGINT/SIGHUP; 2 usage or setup error.
stderr: "run.sh: tap netns NAME: ..." once the netns is ready (--tap), "run.sh: qemu pid N" with
the first console line, "run.sh: guest ready after X s" when the command starts, "run.sh: timings:
..." at the end.
Guest: eth0 10.0.2.15/24 (slirp; 10.0.2.2 = host loopback), rxe0 on it (GID 1 = ::ffff:10.0.2.15);
with --tap eth2/rxe2, GID 0 fe80::5054:ff:fe12:3458, 1 ::ffff:10.77.0.2, 2 fd77::2.
EOF
}
T0=$EPOCHREALTIME
OUT=${RXE_VM_DIR:-$HOME/.cache/rdma-session/rxe-vm}
SHARE= MODE=ro NODE=0 TMO=300 VERBOSE=0 TAP=0 NETNS= FWDS=() KARGS=
need() { (($# >= 2)) || { echo "run.sh: $1 needs a value" >&2; exit 2; }; }
while (($#)); do
  case $1 in
    -s|--share) need "$@"; SHARE=$(cd "$2" && pwd) || exit 2; shift 2;;
    -w|--share-rw) MODE=rw; shift;;
    -T|--tap) TAP=1; shift;;
    --netns) need "$@"; TAP=1; NETNS=$2; shift 2;;
    -f|--fwd) need "$@"; FWDS+=("$2"); shift 2;;
    -n|--node) NODE=1; shift;;
    -k|--kernel-args) need "$@"; KARGS=$2; shift 2;;
    -t|--timeout) need "$@"; TMO=$2; shift 2;;
    -v|--verbose) VERBOSE=1; shift;;
    -h|--help) usage; exit 0;;
    --) shift; break;;
    -*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2;;
    *) break;;
  esac
done
(($#)) || { usage >&2; exit 2; }
[[ $KARGS =~ ^[A-Za-z0-9_.,=:\ -]*$ ]] || { echo "run.sh: --kernel-args takes words of [A-Za-z0-9_.,=:-] (got $KARGS)" >&2; exit 2; }
[[ $TMO =~ ^[0-9]+$ ]] && ((TMO > 0)) || { echo "run.sh: --timeout wants whole seconds > 0" >&2; exit 2; }
[ -s "$OUT/initramfs.cpio" ] && [ -e "$OUT/vmlinux" ] ||
  { echo "run.sh: no build in $OUT; run tools/rxe-vm/build.sh first" >&2; exit 2; }
for f in "${FWDS[@]}"; do # forwarded ports stay on loopback (no host address = all addresses)
  [[ $f =~ ^(tcp|udp):127\.0\.0\.1:[0-9]+-(10\.0\.2\.15)?:[0-9]+$ ]] ||
    { echo "run.sh: --fwd must look like tcp:127.0.0.1:HOSTPORT-:GUESTPORT (got $f)" >&2; exit 2; }
done
if ((TAP)); then
  NETNS=${NETNS:-rxevm-$$}
  [[ $NETNS =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$ ]] || { echo "run.sh: bad netns name $NETNS" >&2; exit 2; }
fi

# Cleanup runs on every exit path (normal, error, timeout, TERM/INT/HUP): stop our qemu (found by
# its pidfile, and only if it is still qemu), delete the netns this run created (the tap goes with
# it), remove the control dir.
CTL=$(mktemp -d "${TMPDIR:-/tmp}/rxe-vm.XXXXXX")
NS_MADE=
cleanup() {
  local p i
  p=$(cat "$CTL/qemu.pid" 2>/dev/null) || true
  if [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = qemu-system-x86 ]; then
    kill "$p" 2>/dev/null || true
    for i in {1..50}; do [ -e "/proc/$p" ] || break; sleep 0.1; done
    [ ! -e "/proc/$p" ] || kill -9 "$p" 2>/dev/null || true
  fi
  [ -z "$NS_MADE" ] || ip netns delete "$NS_MADE" 2>/dev/null || true
  rm -rf "$CTL"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# The control dir is the 9p share "ctl" (read-only in the guest): the command and settings.
printf '%s\n' "$*" > "$CTL/cmd.sh"
printf 'RXE_VM_SHARE_MODE=%s\n' "$MODE" > "$CTL/env"
NET="user,id=n0"
for f in "${FWDS[@]}"; do NET+=",hostfwd=$f"; done
ARGS=(-accel tcg,thread=multi -cpu max -m "${RXE_VM_MEM:-1024}" -smp "${RXE_VM_SMP:-2}"
      -nodefaults -no-user-config -display none -no-reboot -serial stdio -monitor none
      -netdev "$NET" -device virtio-net-pci,netdev=n0,romfile=
      -virtfs "local,path=$CTL,mount_tag=ctl,security_model=none,readonly=on"
      -kernel "$OUT/vmlinux" -initrd "$OUT/initramfs.cpio")
NSEXEC=()
if ((TAP)); then
  # A netns of our own: the tap, its addresses and qemu live only there; host programs join it
  # with `ip netns exec NAME ...`. fd77::1 is added last: its presence means "ready".
  ip netns add "$NETNS" 2>/dev/null || { echo "run.sh: cannot create netns $NETNS (exists already?)" >&2; exit 2; }
  NS_MADE=$NETNS
  { ip -n "$NETNS" link set lo up &&
    ip -n "$NETNS" tuntap add dev rxetap0 mode tap &&
    ip -n "$NETNS" link set rxetap0 up &&
    ip -n "$NETNS" addr add 10.77.0.1/24 dev rxetap0 &&
    ip -n "$NETNS" addr add fd77::1/64 dev rxetap0 nodad; } ||
    { echo "run.sh: tap setup in netns $NETNS failed" >&2; exit 2; }
  echo "run.sh: tap netns $NETNS: host rxetap0 10.77.0.1/24 fd77::1/64, guest eth2/rxe2 10.77.0.2 fd77::2" >&2
  NSEXEC=(ip netns exec "$NETNS")
  # vnet_hdr=off: no checksum/GSO offload between guest and tap, so a capture on rxetap0 shows the
  # packets exactly as they are on the wire.
  ARGS+=(-netdev tap,id=t0,ifname=rxetap0,script=no,downscript=no,vnet_hdr=off
         -device virtio-net-pci,netdev=t0,romfile=,mac=52:54:00:12:34:58)
fi
RO=,readonly=on; [ "$MODE" = rw ] && RO=
[ -z "$SHARE" ] || ARGS+=(-virtfs "local,path=$SHARE,mount_tag=host,security_model=none$RO")
if ((NODE)); then
  NODEBIN=$(readlink -f "$(command -v node)") || { echo "run.sh: no node on the host" >&2; exit 2; }
  [ "$(basename "$NODEBIN")" = node ] || { echo "run.sh: the node binary must be named node" >&2; exit 2; }
  ARGS+=(-virtfs "local,path=$(dirname "$NODEBIN"),mount_tag=nodebin,security_model=none,readonly=on")
fi
APPEND="console=ttyS0 panic=-1 mitigations=off random.trust_cpu=on"
((VERBOSE)) || APPEND+=" quiet loglevel=1"
[ -z "$KARGS" ] || APPEND+=" $KARGS"
((VERBOSE)) && echo "+ ${NSEXEC[*]} qemu-system-x86_64 ${ARGS[*]} -append '$APPEND'" >&2

# Console filter: CRLF -> LF, take out the guest's two markers (ready, exit code) and the
# power-down line, timestamp the markers into the control dir.
console() {
  local line pid=
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    if [ -z "$pid" ] && pid=$(cat "$CTL/qemu.pid" 2>/dev/null) && [ -n "$pid" ]; then
      echo "run.sh: qemu pid $pid" >&2
    fi
    case $line in
      *@@RXE_VM_READY@@*)
        echo "$EPOCHREALTIME" > "$CTL/t_ready"
        line=${line%%@@RXE_VM_READY@@*}
        echo "run.sh: guest ready after $(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s" >&2;;
      *@@RXE_VM_RC=*@@*)
        echo "$EPOCHREALTIME" > "$CTL/t_done"
        local rc=${line##*@@RXE_VM_RC=}; rc=${rc%%@@*}
        echo "$rc" > "$CTL/rc"
        line=${line%%@@RXE_VM_RC=*};;
      *'reboot: Power down') continue;;
    esac
    [ -z "$line" ] || printf '%s\n' "$line"
  done
}
# qemu in the background + wait, so a TERM to run.sh is handled at once (trap -> cleanup).
set +e
{ timeout -k 5 "$TMO" "${NSEXEC[@]}" qemu-system-x86_64 "${ARGS[@]}" -pidfile "$CTL/qemu.pid" \
    -append "$APPEND" < /dev/null; { echo $? > "$CTL/qrc"; } 2>/dev/null; } | console &
wait $!
QRC=$(cat "$CTL/qrc" 2>/dev/null)
set -e
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
TEND=$EPOCHREALTIME
TR=$(cat "$CTL/t_ready" 2>/dev/null || true) TD=$(cat "$CTL/t_done" 2>/dev/null || true)
echo "run.sh: timings: ready $([ -n "$TR" ] && secs "$T0" "$TR" || echo -)s," \
     "command $([ -n "$TR" ] && [ -n "$TD" ] && secs "$TR" "$TD" || echo -)s, total $(secs "$T0" "$TEND")s" >&2
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then echo "run.sh: timeout after ${TMO}s" >&2; exit 124; fi
[ -s "$CTL/rc" ] || { echo "run.sh: guest ended without reporting an exit code (qemu rc $QRC)" >&2; exit 125; }
exit "$(cat "$CTL/rc")"
