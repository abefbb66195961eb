#!/bin/bash
# nested.sh OUT LOG TEST... - boot the nested Xen host (OUT/xen with dom0 =
# the Debian kernel and OUT/dom0.cpio, from mkinitramfs.sh) under QEMU TCG
# and run the TESTs in dom0, one after the other, with top_builddir=/hr;
# each test's output is framed on the console by "=== BEGIN NAME" and
# "=== END NAME rc=N" (check-xen.sh splits them).  Xen's and dom0's console
# (com1) go to LOG.  Xen under TCG needs smap=0 smep=0.  The CPU has no
# XSAVE: with it, dom0 processes saw their SSE registers corrupted whenever
# a domU ran beside them (Xen switches vector state with XSAVE/XRSTOR,
# which QEMU TCG gets wrong here: a second `xl create` failed its kernel's XZ
# checksum while the first domain ran, and passed with that domain paused
# or with xsave=off).  When dom0 prints HOST-DONE (or the time is up) QEMU
# is stopped by its pid.
# Two emulated CPUs by default (HR_XEN_SMP), dom0's one vCPU pinned to the
# first: QEMU runs them as two threads (MTTCG), so the domU runs beside
# dom0's daemons rather than between them (pause 35 ms instead of 177, the
# epoch interval halved).
# Environment: HR_XEN_CPU (the -cpu), HR_XEN_EXTRA (more Xen options).
# Environment: HR_XEN_TIMEOUT (seconds for everything, 900), HR_XEN_MEM (2G),
#   HR_XEN_ENV: more VAR=value words for the tests.
set -u
OUT=$1
LOG=$2
shift 2
KVER=${KVER:-$(ls /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -1)}
QEMU=${QEMU:-$(command -v qemu-system-x86_64)}
OV=$OUT/overlay
rm -rf "$OV"
mkdir -p "$OV"
{
	echo "#!/bin/bash"
	echo "export top_builddir=/hr top_srcdir=/hr TMPDIR=/tmp HR_XEN_KERNEL=/guest/vmlinuz HR_XEN_INITRD=/guest/domU.cpio HR_XEN_CFG=/guest/hrxt.cfg HR_TEST_BACKENDS=xen ${HR_XEN_ENV:-}"
	echo "export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen-4.17/bin"
	echo "cd /hr"
	i=0
	for t in "$@"; do
		i=$((i + 1))
		echo "$t" >"$OV/t$i"
		echo "echo '=== BEGIN ${t%% *}'"
		echo "timeout ${HR_XEN_TEST_TIMEOUT:-600} bash /t$i </dev/null 2>&1"
		echo "echo \"=== END ${t%% *} rc=\$?\""
	done
} >"$OV/test.sh"
chmod +x "$OV/test.sh"
(cd "$OV" && find . | cpio -o -H newc --quiet) >"$OUT/overlay.cpio"
cat "$OUT/dom0.cpio" "$OUT/overlay.cpio" >"$OUT/boot.cpio"
: >"$LOG"
nice -n 10 "$QEMU" -accel tcg -cpu "${HR_XEN_CPU:-max,xsave=off,avx=off,avx2=off,fma=off,f16c=off,avx-vnni=off}" -smp "${HR_XEN_SMP:-2}" -m "${HR_XEN_MEM:-2G}" \
	-nodefaults -display none -no-reboot -net none \
	-kernel "$OUT/xen" \
	-append "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=1 dom0_vcpus_pin smap=0 smep=0 noreboot loglvl=warning guest_loglvl=warning ${HR_XEN_EXTRA:-}" \
	-initrd "/boot/vmlinuz-$KVER console=hvc0 loglevel=3,$OUT/boot.cpio" \
	-serial "file:$LOG" </dev/null >"$OUT/qemu.stderr" 2>&1 &
qpid=$!
deadline=$(($(date +%s) + ${HR_XEN_TIMEOUT:-900}))
rc=124
while kill -0 "$qpid" 2>/dev/null; do
	if grep -aq "HOST-DONE" "$LOG"; then
		rc=0
		sleep 1
		break
	fi
	[ "$(date +%s)" -lt "$deadline" ] || break
	sleep 1
done
grep -aq "HOST-DONE" "$LOG" && rc=0 # (QEMU may be gone already: dom0 powered off)
kill "$qpid" 2>/dev/null
wait "$qpid" 2>/dev/null
echo "nested: $([ $rc = 0 ] && echo "dom0 done" || echo "timed out or QEMU exited early")" >>"$LOG"
exit $rc
