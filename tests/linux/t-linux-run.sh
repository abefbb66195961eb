#!/bin/bash
# A Linux guest (Debian's kernel, the tiny initramfs of guest-init.sh) under
# `hareplicate run` with two vCPUs: it reaches userland, sees both vCPUs (MADT
# table), runs on kvmclock (hypervisor bit, KVM leaves), prints its numbered
# heartbeat whole and in order, and its reboot ends the run with status 0.
# Then the same guest under QEMU -accel kvm, for the time to userland.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/linux/lib-linux.sh"
need_kvm
need_linux
plan 7
t0=$(date +%s%N)
"$HR" run --kernel "$KERNEL" --initrd "$INITRD" --memory 256M --vcpus 2 \
	--append "console=ttyS0 loglevel=4 hb_count=20 hb_sleep=0.1" >"$T/out" 2>"$T/err" &
pid=$!
on_exit "kill -9 $pid 2>/dev/null"
up_ms=0
if wait_for "$T/out" "^GUEST-UP" "$BOOT_S"; then
	up_ms=$((($(date +%s%N) - t0) / 1000000))
	diag "userland reached $up_ms ms after the start: $(grep -m1 ^GUEST-UP "$T/out")"
else
	# a hang of ours (the nested host's heartbeat goes on): where the guest was
	diag "no userland in $BOOT_S s; the guest console's last lines, then hareplicate's:"
	tail -5 "$T/out" | tr -d '\r' | sed 's/^/#   /'
	tail -5 "$T/err" | sed 's/^/#   /'
fi
wait_exit "$pid" "$BOOT_S"
t1=$(date +%s%N)
if [ "$rc" != 0 ]; then
	diag "the run did not end ($rc); the console's last lines:"
	tail -15 "$T/out" | tr -d '\r' | sed 's/^/#   /'
fi
diag "guest ran to its reboot in $(((t1 - t0) / 1000000)) ms (rc=$rc)"
grep -E "GUEST-UP|IOAPIC|clocksource|Brought up|smpboot: Total|WARNING|BUG" "$T/out" | head -20 | sed 's/^/# /'
ok '[ $rc = 0 ] && grep -q "^GUEST-DONE hb=20" "$T/out"' "the guest boots to userland and its reboot ends the run with status 0"
ok 'grep -q "^GUEST-UP .* cpus=2 " "$T/out"' "Linux starts both vCPUs (the ACPI MADT)"
ok 'grep -q "^GUEST-UP .* ioapic_irqs=[1-9]" "$T/out"' \
	"Linux routes interrupts through the in-kernel I/O APIC the MADT names"
ok 'grep -q "clocksource=kvm-clock" "$T/out"' "the guest's clocksource is kvm-clock"
r=$(hb_check "$T/out")
ok '[ "$r" = "hb 1..20" ]' "the heartbeat is whole and in order, uptime never backwards ($r)"
# Under QEMU TCG the nested KVM's CPUID 0xd sizes disagree with the emulated
# CPU's (an "XSAVE consistency problem" warning at boot): shown, not failed.
grep -A1 "cut here" "$T/out" | grep WARNING | sed 's/^/# /'
ok '! grep -q -e "BUG:" -e "Oops" -e "Kernel panic" "$T/out"' "no kernel BUG, oops or panic on the console"
# The same guest under QEMU (-accel kvm) in the same host, for comparison:
# time from the start to userland, each side
t0=$(date +%s%N)
qemu-system-x86_64 -accel kvm -cpu host -m 256M -smp 2 -nodefaults -display none -no-reboot \
	-serial "file:$T/qout" -kernel "$KERNEL" -initrd "$INITRD" \
	-append "console=ttyS0 loglevel=4 hb_count=20 hb_sleep=0.1" >"$T/qerr" 2>&1 &
qpid=$!
on_exit "kill -9 $qpid 2>/dev/null"
wait_for "$T/qout" "^GUEST-UP" "$BOOT_S"
qemu_ms=$((($(date +%s%N) - t0) / 1000000))
wait_exit "$qpid" "$BOOT_S"
diag "time to userland: hareplicate run ${up_ms} ms, QEMU -accel kvm ${qemu_ms} ms (ratio $(awk -v a="$up_ms" -v b="$qemu_ms" 'BEGIN { if (b > 0) printf "%.2f", a / b }'))"
ok 'grep -q "^GUEST-DONE hb=20" "$T/qout"' "the same guest under QEMU -accel kvm in this host reaches its end (rc=$rc)"
done_testing
