# lib-linux.sh - helpers of the tests run inside the nested test host of
# `make check-linux` (source after tests/lib.sh).  Timeouts come from the
# environment (nested.sh's HR_NESTED_ENV): under emulation everything is
# slow and jittery.
#   HR_LINUX_BOOT_S      seconds for the guest to reach userland (400)
#   HR_LINUX_EPOCH       epoch of the protected guest (50ms)
#   HR_LINUX_FAILOVER_MS the backup daemon's --failover-timeout (5000)
KERNEL=${HR_LINUX_KERNEL:-/guest/vmlinuz}
INITRD=${HR_LINUX_INITRD:-/guest/guest.cpio}
BOOT_S=${HR_LINUX_BOOT_S:-400}
EPOCH=${HR_LINUX_EPOCH:-50ms}
FAILOVER_MS=${HR_LINUX_FAILOVER_MS:-5000}
need_linux() {
	[ -r "$KERNEL" ] && [ -r "$INITRD" ] || skip_all "no guest kernel/initrd ($KERNEL, $INITRD): run by make check-linux"
}
# hb_check FILE: the guest's heartbeat in FILE (NUL bytes of never-written
# offsets dropped) is whole: every "hb N up=U" line N = 1..max present, each
# N with a single content, N in order, U never decreasing.  Prints a reason
# on failure, "hb 1..MAX" on success.
hb_check() {
	tr -d '\000' <"$1" | tr -d '\r' | awk '
	/^hb [0-9]+ up=[0-9.]+$/ {
		n = $2 + 0; u = substr($3, 4) + 0
		if (n in seen) { if (seen[n] != $0) { print "hb " n " came twice with other contents"; bad = 1; exit } ; next }
		if (n != last + 1) { print "hb " last " followed by hb " n; bad = 1; exit }
		if (u < lastu) { print "uptime went back at hb " n ": " lastu " -> " u; bad = 1; exit }
		seen[n] = $0; last = n; lastu = u; next
	}
	/^hb / { print "damaged heartbeat line: " $0; bad = 1; exit }
	END { if (!bad) { if (last == 0) { print "no heartbeat"; exit 1 } ; print "hb 1.." last; exit 0 } ; exit 1 }'
}
# last_hb FILE: the highest heartbeat number in FILE (0 if none; the
# guest's console ends its lines with CR LF)
last_hb() {
	tr -d '\000\r' <"$1" | awk '/^hb [0-9]+ up=[0-9.]+$/ { if ($2 + 0 > m) m = $2 + 0 } END { print m + 0 }'
}
# wait_hb FILE N SECONDS: until heartbeat N is in FILE
wait_hb() {
	_end=$(($(date +%s) + $3))
	while [ "$(date +%s)" -lt "$_end" ]; do
		[ "$(last_hb "$1")" -ge "$2" ] && return 0
		sleep 0.2
	done
	return 1
}
# epoch_figures FILE [FROM]: p50/p99 of interval, pause and ack (ms) and
# dirty pages over the epoch lines of a daemon's STATE-DIR/VM.epochs, from
# line FROM on (1: all, with the first synchronisation and the boot)
epoch_figures() {
	awk -v from="${2:-1}" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1], NR] = kv[2] } }
	function pct(f, p, scale,   a, i, n, t, k) {
		n = 0
		for (i = from; i <= NR; i++) a[++n] = v[f, i] + 0
		for (i = 2; i <= n; i++) { t = a[i]; for (k = i - 1; k >= 1 && a[k] > t; k--) a[k + 1] = a[k]; a[k + 1] = t }
		k = int(n * p / 100 + 0.999); if (k < 1) k = 1
		return a[k] / scale
	}
	END {
		if (NR < from) { print "no epochs"; exit }
		printf "%d epochs: interval p50 %.1f p99 %.1f ms, pause p50 %.1f p99 %.1f ms, ack p50 %.1f p99 %.1f ms, dirty pages p50 %d p99 %d\n", NR - from + 1,
			pct("interval_us", 50, 1000), pct("interval_us", 99, 1000), pct("pause_us", 50, 1000), pct("pause_us", 99, 1000),
			pct("ack_us", 50, 1000), pct("ack_us", 99, 1000), pct("dirty_pages", 50, 1), pct("dirty_pages", 99, 1)
	}' "$1"
}
# gone PID: no such process, or a zombie (dead, not yet reaped)
gone() {
	[ ! -e "/proc/$1/stat" ] || sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q "^Z"
}
# kill_workers CONTROL...: SIGKILL the VM workers the daemons behind these
# control sockets list (a worker outlives its daemon by design: a restarted
# daemon adopts it), and wait (bounded) until they are gone
kill_workers() {
	_w=$(for _c in "$@"; do "$HR" status --control "$_c" 2>/dev/null; done |
		sed -n 's/.* pid=\([0-9]*\).*/\1/p')
	for _p in $_w; do is_pid "$_p" && kill -9 "$_p" 2>/dev/null; done
	for _p in $_w; do is_pid "$_p" && wait_true 10 gone "$_p"; done
	return 0
}
