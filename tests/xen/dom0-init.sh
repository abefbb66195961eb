#!/bin/sh
# /init of dom0 in the nested Xen host of `make check-xen` (mkinitramfs.sh):
# the Xen device drivers, xenfs, xenstored and xen-init-dom0.  No
# xenconsoled: hareplicate's Xen backend reads the protected domain's
# console itself.  Runs /test.sh (added by nested.sh), then powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen-4.17/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
# /var/run is /run (libxl: /var/run/xen, xenstored: /var/run/xenstored), xl locks in /var/lock
rm -rf /var/run
ln -s /run /var/run
mkdir -p /run/xen /run/xenstored /run/lock /var/lib/xen /var/log/xen /var/lib/xenstored /dev/pts
ln -sfn /run/lock /var/lock
mount -t devpts devpts /dev/pts
ip link set lo up
M=/lib/modules/$(uname -r)
for m in xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs; do
	insmod "$M/$m.ko" 2>/dev/null
done
mkdir -p /proc/xen
mount -t xenfs xenfs /proc/xen
xenstored --pid-file /run/xenstored.pid
i=0
while [ $i -lt 100 ] && ! xenstore-read /local >/dev/null 2>&1 && ! [ -S /run/xenstored/socket ]; do
	usleep 100000
	i=$((i + 1))
done
xen-init-dom0 >/dev/null 2>&1
# No xenconsoled: the backend reads the consoles.  libxl's create waits for
# a console daemon to fill console/tty; for domains `xl create` builds in
# the tests this loop answers (the backend does so itself for the domains
# it builds).
(
	while :; do
		for d in $(xenstore-list /local/domain 2>/dev/null); do
			[ "$d" = 0 ] && continue
			t=$(xenstore-read "/local/domain/$d/console/tty" 2>/dev/null) && [ -z "$t" ] &&
				xenstore-write "/local/domain/$d/console/tty" /dev/null
		done
		usleep 200000
	done
) &
echo "DOM0-UP kernel=$(uname -r) xen=$(cat /sys/hypervisor/version/major).$(cat /sys/hypervisor/version/minor) up=$(cut -d' ' -f1 /proc/uptime)"
if [ -x /test.sh ]; then
	/bin/bash /test.sh
	echo "HOST-DONE rc=$? up=$(cut -d' ' -f1 /proc/uptime)"
fi
sync
poweroff -f
