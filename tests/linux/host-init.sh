#!/bin/sh
# /init of the nested test host of `make check-linux` (mkinitramfs.sh): mounts,
# starts its heartbeat, loads KVM (kvm_amd on the emulated AMD CPU of QEMU's
# -cpu max, kvm_intel elsewhere), runs /test.sh (added by nested.sh) and
# powers off.
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mkdir -p /var/tmp /var/run
ip link set lo up
# The host's own heartbeat on the second serial port (nested.sh's $HB): a
# numbered line every 5 s of this kernel's timer, with its uptime, idle time
# and load, whatever the tests do; nested.sh tells a stopped host (no
# heartbeat) from hanging tests (a silent console, the heartbeat going on).
if [ -c /dev/ttyS1 ]; then
	(
		n=0
		while :; do
			n=$((n + 1))
			read -r up idle _ </proc/uptime
			echo "HOST-HB $n up=$up idle=$idle load=$(cut -d' ' -f1-4 /proc/loadavg)"
			sleep 5
		done
	) >/dev/ttyS1 2>&1 </dev/null &
	renice -n -10 $! >/dev/null 2>&1
fi
M=/lib/modules/$(uname -r)
for m in irqbypass ccp kvm kvm-amd kvm-intel tun; do
	[ -f "$M/$m.ko" ] && insmod "$M/$m.ko" 2>/dev/null
done
echo "HOST-UP kernel=$(uname -r) kvm=$([ -c /dev/kvm ] && echo yes || echo no) up=$(cut -d' ' -f1 /proc/uptime)"
if [ -x /test.sh ]; then
	/bin/bash /test.sh
	echo "HOST-DONE rc=$? up=$(cut -d' ' -f1 /proc/uptime) clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	dmesg | grep -i -E "tsc.*unstable|clocksource.*(unstable|switched)" | sed 's/^/HOST-CLOCK /'
fi
poweroff -f
