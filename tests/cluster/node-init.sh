#!/bin/sh
# node-init.sh DIR - one cluster node's "boot", run by cluster.sh as
#   nsenter --net=NETNS unshare --mount --uts --propagation private node-init.sh DIR
# inside the node's cgroup (fencing kills that cgroup: this process and all
# it started).  DIR holds the node's private etc-corosync, var-lib-pacemaker,
# var-lib-corosync and its env file (NODE, SBIN_OVERLAY, OCF_OVERLAY).  It
# mounts them over the system paths (this mount namespace only), gives the
# node its host name, starts corosync, corosync-qdevice and pacemakerd as its
# children and waits until it is killed.
set -u
D=$1
. "$D/env"
mount -t tmpfs -o mode=755 tmpfs /run || exit 1
mount -t tmpfs -o mode=1777 tmpfs /dev/shm || exit 1
mount --bind "$D/etc-corosync" /etc/corosync || exit 1
mount --bind "$D/var-lib-pacemaker" /var/lib/pacemaker || exit 1
mount --bind "$D/var-lib-corosync" /var/lib/corosync || exit 1
# the test's fence agent and resource agent appear where pacemaker looks
mount -t overlay overlay -o "lowerdir=$SBIN_OVERLAY:/usr/sbin" /usr/sbin || exit 1
mount -t overlay overlay -o "lowerdir=$OCF_OVERLAY:/usr/lib/ocf/resource.d" \
	/usr/lib/ocf/resource.d || exit 1
mkdir -p /run/pacemaker /run/crm /run/corosync-qdevice /var/lib/hareplicate
chown hacluster:haclient /run/crm /run/pacemaker
hostname "$NODE"
ip link set lo up
export PCMK_logfile="$D/pacemaker.log" PCMK_debug=no PCMK_stonith_watchdog_timeout=0
corosync -f >>"$D/corosync.out" 2>&1 &
cpid=$!
i=0
until corosync-cfgtool -s >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] && kill -0 $cpid 2>/dev/null || { echo "corosync did not start" >&2; exit 1; }
	sleep 0.1
done
corosync-qdevice -f >>"$D/qdevice.out" 2>&1 &
qpid=$!
pacemakerd >>"$D/pacemakerd.out" 2>&1 &
ppid=$!
echo ready >"$D/ready"
# the node lives until it is fenced or torn down (a killed corosync leaves
# the rest running, as on a real host: only fencing makes it safe)
while :; do
	sleep 1
done
