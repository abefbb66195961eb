#!/bin/sh
# The multiboot v1 loader and PC devices against QEMU, the reference: the
# same mbprobe.elf boots under both and must report the same machine
# (magic, info flags, mem_lower/mem_upper, command line, memory map, CR0,
# EFLAGS.IF, TSC frequency calibrated with PIT channel 2 through port 0x61)
# and must drive the devices a foreign kernel relies on the same way: the
# 8259 PICs remapped to 0x20/0x28, PIT channel 0 at 1000 Hz on IRQ 0 waited
# for with hlt (50 ticks ~ 50 ms of TSC time), the UART's THRE interrupt
# on IRQ 4 and a valid CMOS RTC.  Only the loader's name, where it put the
# info block, EFLAGS bits the spec leaves undefined, the calibrated TSC
# frequency and the measured IRQ 0 milliseconds (both compared with a
# tolerance) may differ.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_kvm
[ -n "$QEMU" ] && [ -x "$QEMU" ] || QEMU=$(command -v qemu-system-x86_64)
[ -n "$QEMU" ] || skip_all "qemu-system-x86_64 not installed"
plan 14

# Timings measured by emulated ring-0 code swing with host load (make check
# runs tests in parallel): each side boots five times and the medians of
# the TSC and IRQ 0 figures are compared (two disturbed boots of five do
# not move a median); everything else must match exactly on the first boot.
median() { printf '%s\n' "$@" | grep . | sort -n | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'; }
BOOTS="1 2 3 4 5"
cd "$GUESTS" || exit 1
for mem in 128 1024; do
	for i in $BOOTS; do
		timeout 60 "$HR" run --kernel mbprobe.elf --memory ${mem}M --append "probe a=1 b=two" \
			>"$T/ours.$mem.$i" 2>"$T/ours.$mem.err"
		r=$?
		[ $i = 1 ] && ours_rc=$r
		timeout 60 "$QEMU" -accel kvm -m $mem -display none -serial stdio -no-reboot -nodefaults \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
			-kernel mbprobe.elf -append "probe a=1 b=two" >"$T/qemu.$mem.$i" 2>"$T/qemu.$mem.err"
		r=$?
		[ $i = 1 ] && qemu_rc=$r
	done
	cp "$T/ours.$mem.1" "$T/ours.$mem"
	cp "$T/qemu.$mem.1" "$T/qemu.$mem"
	fig() { sed -n "s/$1/\\1/p" "$2" | head -1; }
	tsc() { median $(for i in $BOOTS; do fig '.*tsc_mhz=\([0-9]*\).*' "$T/$1.$mem.$i"; done); }
	irq() { median $(for i in $BOOTS; do fig '^mbprobe: irq0 ticks=50 ms=\([0-9]*\)$' "$T/$1.$mem.$i"; done); }
	ok '[ $ours_rc = $qemu_rc ] && grep -q "mbprobe: ok" "$T/ours.$mem"' \
		"${mem} MiB: same exit status as QEMU ($ours_rc / $qemu_rc) and the probe is satisfied"
	norm() { grep '^mbprobe:' "$1" | grep -v -e 'boot_loader_name=' -e 'eflags=' -e 'tsc_mhz=' |
		sed -e 's/info=0x[0-9a-f]* //' -e 's/^\(mbprobe: irq0 ticks=[0-9]*\) ms=[0-9]*$/\1 ms=N/'; }
	norm "$T/ours.$mem" >"$T/n.ours"
	norm "$T/qemu.$mem" >"$T/n.qemu"
	ok 'cmp -s "$T/n.ours" "$T/n.qemu"' "${mem} MiB: magic, flags, memory sizes, command line, memory map, CR0, IRQ 0, IRQ 4 and RTC lines as under QEMU"
	diff "$T/n.ours" "$T/n.qemu" | sed 's/^/# /'
	ok 'grep -q "if=0 vm=0" "$T/ours.$mem"' "${mem} MiB: entered with interrupts off, not in v86 mode"
	mo=$(tsc ours)
	mq=$(tsc qemu)
	diag "TSC calibrated by PIT channel 2, median of 5 boots: ours ${mo} MHz, QEMU ${mq} MHz"
	ok '[ -n "$mo" ] && [ -n "$mq" ] && [ $((mo * 100)) -ge $((mq * 75)) ] && [ $((mo * 100)) -le $((mq * 125)) ] && grep -q "source=pit$" "$T/ours.$mem"' \
		"${mem} MiB: TSC calibration through port 0x61 agrees with QEMU (medians within 25%)"
	io=$(irq ours)
	iq=$(irq qemu)
	diag "50 IRQ 0 ticks of PIT channel 0 at 1000 Hz, median of 5 boots: ours ${io:-none} ms, QEMU ${iq:-none} ms"
	ok '[ -n "$io" ] && [ -n "$iq" ] && [ "$io" -ge 25 ] && [ "$io" -le 100 ] && [ "$iq" -ge 25 ] && [ "$iq" -le 100 ]' \
		"${mem} MiB: PIT channel 0 rate generator delivers IRQ 0 through the remapped PIC and wakes hlt, 50 ticks in 25-100 ms under both"
	ok 'grep -qx "mbprobe: irq4 thre=ok" "$T/ours.$mem"' \
		"${mem} MiB: UART THRE interrupt (IER.ETBEI, MCR.OUT2) arrives on IRQ 4 with IIR=THRE"
	ok 'grep -qx "mbprobe: rtc ok" "$T/ours.$mem"' \
		"${mem} MiB: CMOS RTC registers A, B, D and seconds/minutes/hours are valid"
done
done_testing
