#!/bin/sh
# /init of the protected domU of `make check-xen`: a counter on the PV
# console, one "HRCOUNT n" line every HRCOUNT_MS (kernel command line,
# default 100).  The checks in dom0 read these lines for gaps and repeats.
export PATH=/bin:/sbin
mount -t proc proc /proc
ms=100
for a in $(cat /proc/cmdline); do
	case $a in HRCOUNT_MS=*) ms=${a#HRCOUNT_MS=} ;; esac
done
echo "HRCOUNT-START up=$(cut -d' ' -f1 /proc/uptime)"
i=0
while :; do
	i=$((i + 1))
	echo "HRCOUNT $i"
	usleep $((ms * 1000))
done
