#!/bin/sh
# The multiboot v1 loader and PC devices against QEMU, the reference: the
# same mbprobe.elf boots under both and must report the same machine
# (magic, info flags, mem_lower/mem_upper, command line, memory map, CR0,
# EFLAGS.IF, TSC frequency calibrated with PIT channel 2 through port 0x61).
# Only the loader's name, where it put the info block and EFLAGS bits the
# spec leaves undefined may differ.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_kvm
[ -n "$QEMU" ] && [ -x "$QEMU" ] || QEMU=$(command -v qemu-system-x86_64)
[ -n "$QEMU" ] || skip_all "qemu-system-x86_64 not installed"
plan 8

cd "$GUESTS" || exit 1
for mem in 128 1024; do
	timeout 60 "$HR" run --kernel mbprobe.elf --memory ${mem}M --append "probe a=1 b=two" \
		>"$T/ours.$mem" 2>"$T/ours.$mem.err"
	ours_rc=$?
	timeout 60 "$QEMU" -accel kvm -m $mem -display none -serial stdio -no-reboot -nodefaults \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-kernel mbprobe.elf -append "probe a=1 b=two" >"$T/qemu.$mem" 2>"$T/qemu.$mem.err"
	qemu_rc=$?
	ok '[ $ours_rc = $qemu_rc ] && grep -q "mbprobe: ok" "$T/ours.$mem"' \
		"${mem} MiB: same exit status as QEMU ($ours_rc / $qemu_rc) and the probe is satisfied"
	norm() { grep '^mbprobe:' "$1" | grep -v -e 'boot_loader_name=' -e 'eflags=' -e 'tsc_mhz=' |
		sed 's/info=0x[0-9a-f]* //'; }
	norm "$T/ours.$mem" >"$T/n.ours"
	norm "$T/qemu.$mem" >"$T/n.qemu"
	ok 'cmp -s "$T/n.ours" "$T/n.qemu"' "${mem} MiB: magic, flags, memory sizes, command line, memory map and CR0 as under QEMU"
	diff "$T/n.ours" "$T/n.qemu" | sed 's/^/# /'
	ok 'grep -q "if=0 vm=0" "$T/ours.$mem"' "${mem} MiB: entered with interrupts off, not in v86 mode"
	mo=$(sed -n 's/.*tsc_mhz=\([0-9]*\).*/\1/p' "$T/ours.$mem")
	mq=$(sed -n 's/.*tsc_mhz=\([0-9]*\).*/\1/p' "$T/qemu.$mem")
	diag "TSC calibrated by PIT channel 2: ours ${mo} MHz, QEMU ${mq} MHz"
	ok '[ -n "$mo" ] && [ -n "$mq" ] && [ $((mo * 100)) -ge $((mq * 75)) ] && [ $((mo * 100)) -le $((mq * 125)) ] && grep -q "source=pit$" "$T/ours.$mem"' \
		"${mem} MiB: TSC calibration through port 0x61 agrees with QEMU (within 25%: ring-0 code is emulated here and both are noisy under load)"
done
done_testing
