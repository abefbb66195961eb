#!/bin/bash
# A Linux guest (Debian's kernel, the tiny initramfs of guest-init.sh) under
# `hareplicate run` with two vCPUs: it reaches userland, sees both vCPUs (MP
# table), runs on kvmclock (hypervisor bit, KVM leaves), prints its numbered
# heartbeat whole and in order, and its reboot ends the run with status 0.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/linux/lib-linux.sh"
need_kvm
need_linux
plan 6
t0=$(date +%s%N)
timeout "$BOOT_S" "$HR" run --kernel "$KERNEL" --initrd "$INITRD" --memory 256M --vcpus 2 \
	--append "console=ttyS0 hb_count=20 hb_sleep=0.1" >"$T/out" 2>"$T/err"
rc=$?
t1=$(date +%s%N)
diag "guest ran to its reboot in $(((t1 - t0) / 1000000)) ms (rc=$rc)"
grep -E "GUEST-UP|IOAPIC|clocksource|Brought up|smpboot: Total|WARNING|BUG" "$T/out" | head -20 | sed 's/^/# /'
ok '[ $rc = 0 ] && grep -q "^GUEST-DONE hb=20" "$T/out"' "the guest boots to userland and its reboot ends the run with status 0"
ok 'grep -q "^GUEST-UP .* cpus=2 " "$T/out" && grep -q "smp: Brought up 1 node, 2 CPUs" "$T/out"' \
	"Linux starts both vCPUs (MP table)"
ok 'grep -q "IOAPIC\[0\]: apic_id 2, version 17, address 0xfec00000, GSI 0-23" "$T/out"' \
	"Linux finds the in-kernel I/O APIC where the MP table puts it"
ok 'grep -q "clocksource=kvm-clock" "$T/out"' "the guest's clocksource is kvm-clock"
r=$(hb_check "$T/out")
ok '[ "$r" = "hb 1..20" ]' "the heartbeat is whole and in order, uptime never backwards ($r)"
ok '! grep -q -e "------------\[ cut here \]" -e "BUG:" "$T/out"' "no kernel warning or BUG on the console"
done_testing
