#!/bin/sh
# The PVH loader against QEMU, the reference: the same pvhprobe.elf (a
# XEN_ELFNOTE_PHYS32_ENTRY note and no multiboot header) boots under both
# and must see the same struct hvm_start_info in EBX: magic and version,
# the command line (for PVH just the -append string, no kernel path), and
# the same usable RAM (type 1) in the memory map.  Reserved entries may
# differ (they are shown, not compared), and so may where the start info
# and the RSDP are and EFLAGS bits the ABI leaves undefined.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_kvm
[ -n "$QEMU" ] && [ -x "$QEMU" ] || QEMU=$(command -v qemu-system-x86_64)
[ -n "$QEMU" ] || skip_all "qemu-system-x86_64 not installed"
plan 10

cd "$GUESTS" || exit 1
for mem in 128 1024; do
	timeout 60 "$HR" run --kernel pvhprobe.elf --memory ${mem}M --append "probe a=1 b=two" \
		>"$T/ours.$mem" 2>"$T/ours.$mem.err"
	ours_rc=$?
	timeout 60 "$QEMU" -accel kvm -m $mem -display none -serial stdio -no-reboot -nodefaults \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-kernel pvhprobe.elf -append "probe a=1 b=two" >"$T/qemu.$mem" 2>"$T/qemu.$mem.err"
	qemu_rc=$?
	sed 's/^/# ours: /' "$T/ours.$mem.err"
	ok '[ $ours_rc = $qemu_rc ] && grep -qx "pvhprobe: ok" "$T/ours.$mem"' \
		"${mem} MiB: same exit status as QEMU ($ours_rc / $qemu_rc) and the probe is satisfied"
	grep '^pvhprobe: FAIL' "$T/ours.$mem" | sed 's/^/# ours: /'
	line() { grep "^pvhprobe: $1" "$2"; }
	ok '[ -n "$(line magic= "$T/qemu.$mem")" ] && [ "$(line magic= "$T/ours.$mem")" = "$(line magic= "$T/qemu.$mem")" ]' \
		"${mem} MiB: start info magic and version as under QEMU"
	ok '[ -n "$(line cmdline= "$T/qemu.$mem")" ] && [ "$(line cmdline= "$T/ours.$mem")" = "$(line cmdline= "$T/qemu.$mem")" ]' \
		"${mem} MiB: command line as under QEMU"
	diag "ours: $(line cmdline= "$T/ours.$mem")"
	diag "QEMU: $(line cmdline= "$T/qemu.$mem")"
	grep '^pvhprobe: memmap addr=.* type=1$' "$T/ours.$mem" >"$T/ram.ours"
	grep '^pvhprobe: memmap addr=.* type=1$' "$T/qemu.$mem" >"$T/ram.qemu"
	ok '[ -s "$T/ram.qemu" ] && cmp -s "$T/ram.ours" "$T/ram.qemu"' \
		"${mem} MiB: usable RAM (type 1) in the memory map as under QEMU"
	diff "$T/ram.ours" "$T/ram.qemu" | sed 's/^/# /'
	grep '^pvhprobe: memmap addr=' "$T/ours.$mem" >"$T/mm.ours"
	grep '^pvhprobe: memmap addr=' "$T/qemu.$mem" >"$T/mm.qemu"
	cmp -s "$T/mm.ours" "$T/mm.qemu" || {
		diag "${mem} MiB: the whole memory maps differ (< ours, > QEMU):"
		diff "$T/mm.ours" "$T/mm.qemu" | sed 's/^/# /'
	}
	ok 'line "cr0=" "$T/ours.$mem" | grep -q "pe=1 pg=0 cr4=0x0$" && line "eflags=" "$T/ours.$mem" | grep -q "if=0 vm=0$"' \
		"${mem} MiB: entered in protected mode, paging off, CR4 clear, interrupts off"
done
done_testing
