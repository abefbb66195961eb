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
#   HR_NESTED_MEM (4G), HR_NESTED_TIMEOUT (seconds for the whole boot, 2400),
#   HR_NESTED_ENV: more VAR=value words for the tests, e.g. HR_LINUX_EPOCH=50ms
#   HR_NESTED_HB_SILENCE_S (60), HR_NESTED_SILENCE_S (240): see the watchdog
# Exit status: QEMU's; 125 a proven emulator freeze, 126 another stop.
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
HB=${LOG%.log}.hb.log
QMP=$OUT/qmp.sock
: >"$HB"
rm -f "$QMP" "$OUT/qemu.pid"
timeout "${HR_NESTED_TIMEOUT:-2400}" nice -n 10 "$QEMU" -accel tcg -cpu max -smp 1 \
	-m "${HR_NESTED_MEM:-4G}" -nodefaults -display none -no-reboot -net none \
	-kernel "/boot/vmlinuz-$KVER" -initrd "$OUT/boot.cpio" \
	-append "console=ttyS0 loglevel=3 panic=-1" -serial "file:$LOG" -serial "file:$HB" \
	-qmp "unix:$QMP,server=on,wait=off" -pidfile "$OUT/qemu.pid" -name hr-nested,debug-threads=on </dev/null &
qpid=$!
. "$(dirname "$0")/freeze.sh"
# The watchdog.  The test host's /init prints a heartbeat (HOST-HB N, every
# 5 s of its own timer) on the second serial port ($HB): once it has begun,
# a heartbeat silent for HR_NESTED_HB_SILENCE_S (60) is a stopped test host;
# before it (the kernel's boot), a console silent for HR_NESTED_SILENCE_S
# (240).  A console silent while the heartbeat goes on is a hang of the
# tests, not of the host: the test's own timeout (HR_NESTED_TEST_TIMEOUT)
# ends it.  At a stop, freeze_evidence (freeze.sh) writes QEMU's view of
# the emulated CPU and QEMU's threads' CPU times into LOG, QEMU is killed,
# and the exit status is 125 only if the evidence proves a stuck emulated
# CPU (freeze_verdict), 126 otherwise; check-linux.sh boots again only on 125.
# Silences are measured on this host's clock (polled every 5 s); the
# longest of each is said at the end.
CPU=${LOG%.log}.cpu
: >"$CPU"
vt=''
now=$(date +%s)
clast=-1 hlast=0 ct=$now ht=$now cmax=0 cmaxline='' cline='' hmax=0
while kill -0 "$qpid" 2>/dev/null; do
	sleep 5
	now=$(date +%s)
	# the emulated CPU's thread's CPU time, for the end's figures
	[ -n "$vt" ] || vt=$(grep -l '^CPU 0/TCG$' /proc/"$(cat "$OUT/qemu.pid" 2>/dev/null)"/task/*/comm 2>/dev/null | head -1)
	[ -n "$vt" ] && echo "$now $(sed 's/.*) //' "${vt%comm}stat" 2>/dev/null | awk '{ print $12 + $13 }')" >>"$CPU"
	size=$(stat -c %s "$LOG" 2>/dev/null || echo 0)
	hsize=$(stat -c %s "$HB" 2>/dev/null || echo 0)
	if [ "$size" != "$clast" ]; then
		[ $((now - ct)) -gt "$cmax" ] && cmax=$((now - ct)) cmaxline=$cline
		clast=$size ct=$now cline=$(tail -1 "$LOG" | tr -d '\r' | cut -c1-60)
	fi
	if [ "$hsize" != "$hlast" ]; then
		[ "$hlast" -gt 0 ] && [ $((now - ht)) -gt "$hmax" ] && hmax=$((now - ht))
		hlast=$hsize ht=$now
	fi
	csilent=$((now - ct)) hsilent=$((now - ht))
	why=
	if [ "$hsize" -gt 0 ] && [ "$hsilent" -ge "${HR_NESTED_HB_SILENCE_S:-60}" ]; then
		why="the test host's heartbeat stopped $hsilent s ago ($(tail -1 "$HB" | tr -d '\r')); console silent $csilent s"
	elif [ "$hsize" = 0 ] && [ "$csilent" -ge "${HR_NESTED_SILENCE_S:-240}" ]; then
		why="no heartbeat yet and the console silent for $csilent s"
	fi
	if [ -n "$why" ]; then
		echo "nested: FREEZE? $why: evidence follows" >>"$LOG"
		freeze_evidence "$(cat "$OUT/qemu.pid" 2>/dev/null)" "$QMP" >>"$LOG" 2>&1
		kill "$qpid" 2>/dev/null
		wait "$qpid" 2>/dev/null
		verdict=$(freeze_verdict "$LOG")
		if [ "$hsize" -gt 0 ] && [ "${verdict%%:*}" = stuck ]; then
			echo "nested: FROZEN: $why; $verdict: QEMU killed" >>"$LOG"
			exit 125
		fi
		echo "nested: STOPPED: $why; $verdict: QEMU killed, not a proven emulator freeze" >>"$LOG"
		exit 126
	fi
done
wait "$qpid"
rc=$?
# QEMU's vCPU thread: its share of a core over the whole boot and the least
# over 60 s (a host waiting for nothing, or starved, has a low one)
share=$(awk 'NF == 2 { n++; t[n] = $1; k[n] = $2 }
	END {
		if (n < 2 || t[n] == t[1]) { print "no figures"; exit }
		min = -1
		for (i = 1; i <= n; i++)
			for (j = i + 1; j <= n; j++)
				if (t[j] - t[i] >= 60) {
					s = (k[j] - k[i]) / (t[j] - t[i])
					if (min < 0 || s < min) { min = s; at = t[i] - t[1] }
					break
				}
		printf "%.0f%% of a core over %d s", (k[n] - k[1]) / (t[n] - t[1]), t[n] - t[1]
		if (min >= 0) printf ", least over 60 s %.0f%% (from +%d s)", min, at
	}' "$CPU")
echo "nested: qemu exit status $rc; longest silence: console ${cmax} s (after \"$cmaxline\"), heartbeat $hmax s (interval 5 s); QEMU's vCPU thread $share" >>"$LOG"
exit $rc
