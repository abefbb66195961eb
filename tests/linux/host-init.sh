#!/bin/sh
# /init of the nested test host of `make check-linux` (mkinitramfs.sh): mounts,
# loads KVM (kvm_amd on the emulated AMD CPU of QEMU's -cpu max, kvm_intel
# elsewhere), runs /test.sh (added by nested.sh) and powers off.
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mkdir -p /var/tmp /var/run
ip link set lo up
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
