#!/bin/busybox sh
# /init (PID 1) of the rxe-vm guest: mount the basics, load rdma_rxe, bring up rxe0 on eth0 and,
# with run.sh --tap, rxe2 on eth2; print the ready marker, run /run/ctl/cmd.sh (written by run.sh)
# under bash, print its exit code with a marker, power off.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
for d in /dev/shm /tmp /run; do mount -t tmpfs tmpfs $d; done

# Kernel modules in dependency order (build.sh computed it with modprobe --show-depends).
while read -r m; do
  insmod "/lib/modules/$m" 2>/dev/null || echo "rxe-vm: insmod $m failed"
done < /lib/modules/load-order

# No IPv6 DAD anywhere: link-local and fd77::2 (rxe GIDs) are usable at once.
for n in default all eth0 eth1 eth2; do
  [ -e /proc/sys/net/ipv6/conf/$n ] && echo 0 > /proc/sys/net/ipv6/conf/$n/accept_dad
done
ip link set lo up

# eth0: slirp, static (no DHCP wait). 10.0.2.2 is the host's loopback (or the netns's, with --tap).
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
rdma link add rxe0 type rxe netdev eth0 || echo "rxe-vm: rdma link add rxe0 failed"

# The tap NIC of run.sh --tap (MAC 52:54:00:12:34:58) is always eth2, with 10.77.0.2/24 and
# fd77::2/64; the host side (10.77.0.1, fd77::1) is in run.sh's netns. rxe2's GIDs, all RoCE v2:
# 0 = fe80::5054:ff:fe12:3458, 1 = ::ffff:10.77.0.2, 2 = fd77::2 (ib_core adds IPv4 before IPv6).
for d in /sys/class/net/eth*; do
  [ "$(cat "$d/address")" = 52:54:00:12:34:58 ] || continue
  [ "${d##*/}" = eth2 ] || ip link set "${d##*/}" name eth2
  echo 0 > /proc/sys/net/ipv6/conf/eth2/accept_dad
  ip link set eth2 up
  ip addr add 10.77.0.2/24 dev eth2
  ip addr add fd77::2/64 dev eth2
  rdma link add rxe2 type rxe netdev eth2 || echo "rxe-vm: rdma link add rxe2 failed"
  # GIDs and carrier appear asynchronously (netdev events): wait until eth2 has carrier and the
  # IPv6 GID (index 2) is there. Fast on an idle host (~0.1 s); a loaded TCG guest can take
  # seconds, so the deadline is long (30 s) and a timeout is printed, not hidden.
  i=0
  while :; do
    g=$(cat /sys/class/infiniband/rxe2/ports/1/gids/2 2>/dev/null)
    c=$(cat /sys/class/net/eth2/carrier 2>/dev/null)
    [ "$c" = 1 ] && [ -n "$g" ] && [ "$g" != 0000:0000:0000:0000:0000:0000:0000:0000 ] && break
    i=$((i + 1))
    [ $i -lt 3000 ] || { echo "rxe-vm: eth2/rxe2 not ready after 30 s: carrier=$c gid2=$g"; break; }
    sleep 0.01
  done
done

# 9p shares: "ctl" (command, always), "host" (run.sh -s, optional), "nodebin" (run.sh -n).
has_tag() { grep -qx "$1" /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag 2>/dev/null; }
p9() { mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,"$3" "$1" "$2"; }
mkdir -p /run/ctl /mnt/host /opt/nodebin
p9 ctl /run/ctl ro
. /run/ctl/env 2>/dev/null     # RXE_VM_SHARE_MODE
cd /root
has_tag host && p9 host /mnt/host "${RXE_VM_SHARE_MODE:-ro}" && cd /mnt/host
if has_tag nodebin; then
  p9 nodebin /opt/nodebin ro,cache=loose && ln -sf /opt/nodebin/node /usr/local/bin/node
fi

echo "@@RXE_VM_READY@@"
bash /run/ctl/cmd.sh
rc=$?
echo "@@RXE_VM_RC=$rc@@"
sync
poweroff -f
