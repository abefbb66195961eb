#!/bin/bash
# Devices a stock kernel finds by itself.  Debian's kernel (virtio as
# modules, no virtio_mmio.device= parser built in, no PCI here) under
# `hareplicate run` with a virtio-net on a TAP and a virtio-blk disk (a raw
# image with a serial and a known first sector); the guest's initramfs insmods
# the kernel's own virtio modules (guest-init.sh, mkinitramfs.sh) and says
# what it sees.  With the KVM backend's ACPI tables (src/backends/kvm/acpi.c)
# the kernel finds its RSDP, virtio_mmio binds the LNRO0005 device, eth0
# appears, and so does the disk (vda: its serial and first sector read
# back); the console's interrupt-driven COM1 and both vCPUs work under the
# hardware-reduced FADT.  Then the same guest with acpi=off (the MP table
# only, as before the tables) for the time to init's first line, each way.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/linux/lib-linux.sh"
need_kvm
need_linux
TAP=hrdev0
ip tuntap add dev "$TAP" mode tap 2>/dev/null && ip link set "$TAP" up ||
	skip_all "cannot create TAP $TAP (tun module, CAP_NET_ADMIN)"
on_exit "ip link del $TAP 2>/dev/null"
plan 8
DISK="$T/disk.img"
{ printf 'HRDISKSECTOR0OK1'; head -c 1048560 /dev/zero; } >"$DISK" && truncate -s 16M "$DISK" ||
	{ echo "Bail out! cannot make $DISK"; exit 1; }
# boot NAME EXTRA-APPEND: the guest to its reboot; $up_ms = wall time from
# the start to init's first line (GUEST-VIRTIO), $rc its exit status
boot() {
	local t0 pid
	t0=$(date +%s%N)
	"$HR" run --kernel "$KERNEL" --initrd "$INITRD" --memory 256M --vcpus 2 --net "tap=$TAP" \
		--disk "$DISK,serial=hrtest01" --append "console=ttyS0 loglevel=4 hb_count=3 hb_sleep=0.1 $2" >"$T/$1.out" 2>"$T/$1.err" &
	pid=$!
	on_exit "kill -9 $pid 2>/dev/null"
	up_ms=0
	if wait_for "$T/$1.out" "^GUEST-VIRTIO" "$BOOT_S"; then
		up_ms=$((($(date +%s%N) - t0) / 1000000))
	else
		diag "$1: no init line in $BOOT_S s; the console's last lines, then hareplicate's:"
		tail -5 "$T/$1.out" | tr -d '\r' | sed 's/^/#   /'
		tail -5 "$T/$1.err" | sed 's/^/#   /'
	fi
	# the reboot takes seconds: a run that does not end in REBOOT_S has hung
	wait_for "$T/$1.out" "^GUEST-DONE" "$BOOT_S"
	wait_exit "$pid" "$REBOOT_S"
	line=$(tr -d '\r' <"$T/$1.out" | grep -m1 "^GUEST-VIRTIO")
	diag "$1: init's first line $up_ms ms after the start (rc=$rc): $line"
	if [ "$rc" != 0 ]; then
		diag "$1: the run did not end; the console's last lines, then hareplicate's:"
		tail -25 "$T/$1.out" | tr -d '\r' | sed 's/^/#   /'
		tail -5 "$T/$1.err" | sed 's/^/#   /'
	fi
}
REBOOT_S=${HR_LINUX_REBOOT_S:-90}
boot acpi "loglevel=7"
acpi_ms=$up_ms acpi_rc=$rc
tr -d '\r' <"$T/acpi.out" | grep -E "ACPI|virtio|LNRO|ttyS0|rtc|WARNING|BUG" | head -20 | sed 's/^/# /'
ok 'grep -q "^GUEST-VIRTIO devices=[1-9][0-9]* " "$T/acpi.out"' \
	"Debian's virtio_mmio finds the device by itself: /sys/bus/virtio/devices is not empty"
ok 'grep -q "^GUEST-VIRTIO .* eth0=yes " "$T/acpi.out"' "virtio_net gives it eth0"
ok 'grep -q "^GUEST-VIRTIO .* vda=hrtest01/HRDISKSECTOR0OK1 " "$T/acpi.out"' \
	"virtio_blk gives it vda: its serial and its first sector read back"
ok 'grep -q "^GUEST-VIRTIO .* acpi=yes rsdp_missing=0 " "$T/acpi.out" && ! grep -q "RSDP was not found" "$T/acpi.out"' \
	"the kernel reads the ACPI tables (no \"RSDP was not found\")"
ok '[ "$acpi_rc" = 0 ] && grep -q "^GUEST-UP .* cpus=2 " "$T/acpi.out" && grep -q "^GUEST-DONE hb=3" "$T/acpi.out"' \
	"both vCPUs (MADT), the console whole, the reboot (hardware-reduced: by the reset vector) ends the run"
ok '! grep -q -e "BUG:" -e "Oops" -e "Kernel panic" "$T/acpi.out"' "no kernel BUG, oops or panic"
# the same with reboot=k: the keyboard controller's reset, not the FADT's
# reset register (tells a reset-register fault from one elsewhere)
boot acpi_kbd "reboot=k"
kbd_ms=$up_ms
diag "acpi_kbd: rc=$rc, GUEST-DONE $(grep -c "^GUEST-DONE" "$T/acpi_kbd.out"), Restarting $(grep -c "Restarting system" "$T/acpi_kbd.out")"
diag "acpi: Restarting $(grep -c "Restarting system" "$T/acpi.out"), GUEST-DONE $(grep -c "^GUEST-DONE" "$T/acpi.out")"
boot mptable "acpi=off"
ok '[ "$rc" = 0 ] && grep -q "^GUEST-DONE hb=3" "$T/mptable.out"' \
	"with acpi=off the guest still boots on the MP table (rc=$rc)"
ok 'grep -q "^GUEST-VIRTIO devices=0 " "$T/mptable.out"' \
	"... and, as before the tables, finds no virtio device"
guest_up() { tr -d '\r' <"$1" | sed -n 's/^GUEST-VIRTIO .* up=\([0-9.]*\).*/\1/p' | head -1; }
diag "time to init's first line (loglevel=4): ACPI ${kbd_ms} ms (guest uptime $(guest_up "$T/acpi_kbd.out") s), acpi=off ${up_ms} ms (guest uptime $(guest_up "$T/mptable.out") s); ACPI with loglevel=7 ${acpi_ms} ms"
done_testing
