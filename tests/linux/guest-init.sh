#!/bin/sh
# /init of the Linux guest of `make check-linux`: says it is up, then prints a
# numbered heartbeat with the guest's uptime, forever or hb_count times and
# then reboots (the VMM stops on the keyboard controller's reset).
# Kernel command line: hb_sleep=SECONDS (default 0.2), hb_count=N (0: forever).
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
# Debian's own virtio modules (mkinitramfs.sh), as a stock initramfs would
# load them: the kernel must have found the virtio-mmio devices by itself
# (ACPI, _HID LNRO0005); then one line on what it found.
if [ -d /lib/modules/virtio ]; then
	for m in virtio_ring virtio virtio_mmio failover net_failover virtio_net virtio_blk; do
		insmod "/lib/modules/virtio/$m.ko" 2>/dev/null
	done
	# a disk: its serial, and the first 16 bytes of its first sector
	vda=no
	[ -e /sys/block/vda ] && vda="$(cat /sys/block/vda/serial 2>/dev/null)/$(dd if=/dev/vda bs=16 count=1 2>/dev/null | tr -cd 'A-Za-z0-9')"
	echo "GUEST-VIRTIO devices=$(ls /sys/bus/virtio/devices 2>/dev/null | wc -l) eth0=$([ -e /sys/class/net/eth0 ] && echo yes || echo no) vda=$vda acpi=$([ -d /sys/firmware/acpi/tables ] && echo yes || echo no) rsdp_missing=$(dmesg | grep -c 'RSDP was not found') up=$(cut -d' ' -f1 /proc/uptime)"
fi
cs=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)
ioapic=$(grep -c IO-APIC /proc/interrupts)
echo "GUEST-UP kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo) ioapic_irqs=$ioapic clocksource=$cs up=$(cut -d' ' -f1 /proc/uptime)"
n=0
while [ "${hb_count:-0}" = 0 ] || [ "$n" -lt "${hb_count}" ]; do
	n=$((n + 1))
	echo "hb $n up=$(cut -d' ' -f1 /proc/uptime)"
	sleep "${hb_sleep:-0.2}"
done
echo "GUEST-DONE hb=$n"
reboot -f
