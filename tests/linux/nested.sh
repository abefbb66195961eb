#!/bin/bash
# nested.sh OUT LOG TEST... - boot the nested test host (OUT/host.cpio from
# mkinitramfs.sh) under QEMU TCG and run the TESTs in it, one after the
# other, with top_builddir=/hr; each test's output is framed on the console
# by "=== BEGIN NAME" and "=== END NAME rc=N" (check-linux.sh splits them).
# The console goes to LOG.
#
# QEMU's -cpu max emulates an AMD CPU with SVM and nested paging, so the
# nested host's KVM (kvm_amd) is a real hardware-virtualisation KVM whatever
# this host's /dev/kvm is.  One vCPU: with two, the nested host was seen to
# freeze (both vCPUs looping on a kernel text patch).  Environment:
#   HR_NESTED_MEM (4G), HR_NESTED_TIMEOUT (seconds for the whole boot, 1500),
#   HR_NESTED_ENV: more VAR=value words for the tests, e.g. HR_LINUX_EPOCH=50ms
set -u
OUT=$1
LOG=$2
shift 2
: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
KVER=${KVER:-$(ls /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -1)}
QEMU=${QEMU:-$(command -v qemu-system-x86_64)}
OV=$OUT/overlay
rm -rf "$OV"
mkdir -p "$OV"
{
	echo "#!/bin/bash"
	echo "export top_builddir=/hr top_srcdir=/hr TMPDIR=/tmp HR_LINUX_KERNEL=/guest/vmlinuz ${HR_NESTED_ENV:-}"
	echo "cd /hr"
	i=0
	for t in "$@"; do
		i=$((i + 1))
		echo "$t" >"$OV/t$i"
		echo "echo '=== BEGIN ${t%% *}'"
		echo "timeout ${HR_NESTED_TEST_TIMEOUT:-600} bash /t$i </dev/null 2>&1"
		echo "echo \"=== END ${t%% *} rc=\$?\""
	done
} >"$OV/test.sh"
chmod +x "$OV/test.sh"
(cd "$OV" && find . | cpio -o -H newc --quiet) >"$OUT/overlay.cpio"
cat "$OUT/host.cpio" "$OUT/overlay.cpio" >"$OUT/boot.cpio"
: >"$LOG"
timeout "${HR_NESTED_TIMEOUT:-1500}" nice -n 10 "$QEMU" -accel tcg -cpu max -smp 1 \
	-m "${HR_NESTED_MEM:-4G}" -nodefaults -display none -no-reboot -net none \
	-kernel "/boot/vmlinuz-$KVER" -initrd "$OUT/boot.cpio" \
	-append "console=ttyS0 loglevel=3 panic=-1" -serial "file:$LOG" </dev/null &
qpid=$!
# A frozen emulated host (seen: once in several runs, the whole test host
# idle mid-test, QEMU using no CPU) prints nothing more: after
# HR_NESTED_SILENCE_S of a silent console it is killed and the exit status
# is 125, so that check-linux.sh can say so and boot it once more.
silent=0 last=-1
while kill -0 "$qpid" 2>/dev/null; do
	sleep 5
	size=$(stat -c %s "$LOG" 2>/dev/null || echo 0)
	if [ "$size" = "$last" ]; then silent=$((silent + 5)); else silent=0 last=$size; fi
	if [ "$silent" -ge "${HR_NESTED_SILENCE_S:-240}" ]; then
		kill "$qpid" 2>/dev/null
		wait "$qpid" 2>/dev/null
		echo "nested: the test host's console was silent for $silent s: QEMU killed (a frozen host)" >>"$LOG"
		exit 125
	fi
done
wait "$qpid"
rc=$?
echo "nested: qemu exit status $rc" >>"$LOG"
exit $rc
