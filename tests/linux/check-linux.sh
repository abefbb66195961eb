#!/bin/bash
# check-linux.sh - `make check-linux`: build the nested test host, boot it
# under QEMU TCG (again only after a proven emulator freeze) and run in it
# the KVM backend's tests and the Linux guest scenarios; print each test's
# TAP output and a summary; exit 0 only if every test ran to its end and
# passed.  Logs in tests/linux/out/.
# Environment: HR_NESTED_ENV (timeouts of the scenarios, see lib-linux.sh),
# HR_NESTED_TIMEOUT, HR_NESTED_MEM, HR_NESTED_HB_SILENCE_S (nested.sh),
# HR_NESTED_BOOTS, CHECK_LINUX_TESTS (the list).
set -u
: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
export top_builddir top_srcdir
OUT=$top_builddir/tests/linux/out
mkdir -p "$OUT"
ls /boot/vmlinuz-* >/dev/null 2>&1 || { echo "check-linux: no /boot/vmlinuz-* (install linux-image-amd64)"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "check-linux: qemu-system-x86_64 not installed"; exit 77; }
TESTS=${CHECK_LINUX_TESTS:-"tests/t-kvm tests/t-kvm-cpuid tests/t-kvm-cpuid.sh tests/t-linux-boot tests/linux/t-linux-run.sh tests/linux/t-linux-devices.sh tests/linux/t-linux-snapshot.sh tests/linux/t-linux-protect.sh tests/linux/t-linux-db.sh tests/t-snapshot-kvm.sh tests/t-multiboot.sh tests/t-diskwalk"}
if [ -z "${CHECK_LINUX_SUMMARY_ONLY:-}" ]; then # (set: summarise the last run's console.log)
	"$top_srcdir/tests/linux/mkinitramfs.sh" "$OUT" || exit 1
	cp "$top_builddir/tests/linux/console-sink" "$OUT/host/hr/tests/linux/" 2>/dev/null
	(cd "$OUT/host" && find . | cpio -o -H newc --quiet) >"$OUT/host.cpio"
	t0=$(date +%s)
	# A boot is booted again from the start only on nested.sh's proof of an
	# emulator freeze (exit 125: the host's heartbeat stopped and QEMU's
	# monitor shows the emulated CPU stuck; README.md), up to
	# HR_NESTED_BOOTS times in all (3).  Every boot keeps its console
	# (console.bootN.log; its heartbeat .hb.log, QEMU's CPU times .cpu);
	# console.log is the last one's; OUT/boots says why, one line per boot
	# that did not run to its end (nested_summary prints it).
	boots=${HR_NESTED_BOOTS:-3}
	rm -f "$OUT"/console.boot* "$OUT/boots"
	boot=1
	while :; do
		log=$OUT/console.boot$boot.log
		"$top_srcdir/tests/linux/nested.sh" "$OUT" "$log" $TESTS
		rc=$?
		cp "$log" "$OUT/console.log"
		why=$(tr -d '\r' <"$log" | grep '^nested: ' | grep -v '^nested: EVIDENCE ' | tail -1)
		evidence=$(tr -d '\r' <"$log" | grep '^nested: EVIDENCE ' | tail -1)
		echo "check-linux: boot $boot: ${why#nested: }"
		[ "$rc" = 0 ] && break
		word=STOPPED
		case $rc:$why in
		"125:nested: FROZEN: "*) if [ "$boot" -lt "$boots" ]; then word=RETRY; else word=FROZEN; fi ;;
		esac
		echo "$word: boot $boot of $boots (console.boot$boot.log): ${why#nested: }${evidence:+ | ${evidence#nested: }}" >>"$OUT/boots"
		echo "check-linux: $(tail -1 "$OUT/boots")"
		[ "$word" = RETRY ] || break
		boot=$((boot + 1))
	done
	echo "check-linux: nested host ran $(($(date +%s) - t0)) s"
fi
. "$top_srcdir/tests/nested-summary.sh"
# shellcheck disable=SC2086
nested_summary "$OUT" $TESTS
