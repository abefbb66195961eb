#!/bin/bash
# b-xen-hr.sh - hareplicate's side of `make bench-xen`: the steps of
# tests/xen/t-xen-protect.sh (domain hrxt created by xl, A's worker attaches
# to it, B builds the paused replica; both daemons in this dom0 on
# loopback), measured for the comparison with `xl remus` (b-xen-remus.sh):
# epoch interval/pause/ack p50/p99 from A's STATE-DIR/hrxt.epochs, the
# counter's line gaps on the released console, and the failover time: from
# the kill of the primary side (SIGKILL of A's daemon and worker, `xl
# destroy hrxt`) to the first counter line beyond the last one released
# before it, as seen by polling the console file console-sink assembles.
# Environment: HR_XEN_EPOCH (50ms), HR_XEN_FAILOVER_MS (B's
# --failover-timeout, 5000), HR_BENCH_RUN_S (seconds of epochs, 60).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root"
[ -e /proc/xen/privcmd ] || [ -e /dev/xen/privcmd ] || skip_all "not in a Xen dom0 (make bench-xen)"
CFG=${HR_XEN_CFG:-/guest/hrxt.cfg}
EPOCH=${HR_XEN_EPOCH:-50ms}
FAILOVER_MS=${HR_XEN_FAILOVER_MS:-5000}
RUN_S=${HR_BENCH_RUN_S:-60}
BOOT_S=${HR_XEN_BOOT_S:-300}
SINK="$top_builddir/tests/xen/console-sink"
[ -x "$SINK" ] || skip_all "console-sink not in the image"
[ -r "$CFG" ] || skip_all "no domU config $CFG"
pgrep -x xenconsoled >/dev/null && skip_all "xenconsoled runs: the backend must be the console's only reader"
plan 4

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
last_count() {
	tr -d '\000\r' <"$1" | awk '/^HRCOUNT [0-9]+$/ { if ($2 + 0 > m) m = $2 + 0 } END { print m + 0 }'
}
wait_count() { # FILE N SECONDS (polls every ~20 ms)
	_end=$(($(date +%s) + $3))
	while [ "$(date +%s)" -lt "$_end" ]; do
		[ "$(last_count "$1")" -ge "$2" ] && return 0
		sleep 0.02
	done
	return 1
}
# pct LABEL FIELD FILE: p50/p99 (nearest rank) of FIELD=us over the epochs
# of a .epochs file, the session's first excepted
pct_us() {
	sed -n "s/.*\b$2=\([0-9]*\).*/\1/p" "$3" | tail -n +2 | sort -n | awk -v l="$1" '{ v[NR] = $1 } END {
		if (!NR) { printf "%s: no samples", l; exit }
		printf "%s p50 %d ms p99 %d ms (%d epochs)", l, v[int((NR + 1) / 2)] / 1000, v[int(NR * 0.99 + 0.999)] / 1000, NR }'
}

PA=7411
PB=7412
PS=7413
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
"$SINK" $PS "$T/console" >"$T/sink.log" 2>&1 &
pids=$!
on_exit "kill -9 $pids 2>/dev/null; xl destroy hrxt 2>/dev/null; xl destroy hrxt-replica 2>/dev/null"
TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || { echo "Bail out! certificates"; exit 1; }
setsid "$HRD" -f $TLS_A --control "$CA" --listen "127.0.0.1:$PA" --state-dir "$T/a/state" >>"$T/a.log" 2>&1 &
pida=$!
"$HRD" -f $TLS_B --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" \
	--failover-timeout "$FAILOVER_MS" --console-default "tcp:127.0.0.1:$PS" >>"$T/b.log" 2>&1 &
pidb=$!
on_exit "kill -9 -- -$pida 2>/dev/null; kill -9 $pida $pidb 2>/dev/null"
wait_for "$T/a.log" "control $CA" 20 && wait_for "$T/b.log" "control $CB" 20
xl create "$CFG" >"$T/xl.out" 2>&1 || { sed 's/^/# xl: /' "$T/xl.out"; echo "Bail out! xl create"; exit 1; }
"$HR" start hrxt --control "$CA" --peer "127.0.0.1:$PB" --backend xen --attach hrxt \
	--memory 128M --epoch "$EPOCH" --console "tcp:127.0.0.1:$PS" >"$T/start.out" 2>&1
rc=$?
ok '[ $rc = 0 ]' "hrxt protected from A to B at $EPOCH epochs"
[ $rc = 0 ] || { tail -15 "$T/a.log" | sed 's/^/# a.log: /'; tail -15 "$T/b.log" | sed 's/^/# b.log: /'; }
ok 'wait_count "$T/console" 30 "$BOOT_S"' "the domU boots on A; its released console counts (30)"
# RUN_S seconds of epochs measured, the console's line times sampled
# by polling (the sink's file carries no times)
: >"$T/times"
end=$(($(date +%s) + RUN_S))
prev=$(last_count "$T/console")
while [ "$(date +%s)" -lt "$end" ]; do
	c=$(last_count "$T/console")
	[ "$c" != "$prev" ] && echo "$(now_ms) $c" >>"$T/times" && prev=$c
	sleep 0.02
done
cp "$T/a/state/hrxt.epochs" "$T/epochs"
before=$(last_count "$T/console")
wpid=$("$HR" status --control "$CA" 2>/dev/null | sed -n 's/.* pid=\([0-9]*\).*/\1/p' | head -1)
t_kill=$(now_ms)
kill -9 -- "-$pida"
is_pid "$wpid" && kill -9 "$wpid"
xl destroy hrxt
ok 'wait_count "$T/console" $((before + 1)) $((FAILOVER_MS / 1000 + 120))' "the domU continues on B after HRCOUNT $before"
t_new=$(now_ms)
ok 'wait_true 30 sh -c "\"$HR\" status --control \"$CB\" | grep -q -E \"role=(promoted|primary)\""' "B promoted"
# gaps between released console lines: the release is per epoch, so lines
# come in bursts; what a watcher sees is the largest wait between bursts
awk '{ if (p) print $1 - p; p = $1 }' "$T/times" | sort -n | awk '{ v[NR] = $1 } END {
	if (NR) printf "# RESULT hr console release gaps (polled): p50 %d ms p99 %d ms (%d bursts)\n", v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.999)], NR }'
echo "# RESULT hr epoch=$EPOCH failover_timeout_ms=$FAILOVER_MS"
echo "# RESULT hr epochs: $(pct_us interval interval_us "$T/epochs"); $(pct_us pause pause_us "$T/epochs"); $(pct_us ack ack_us "$T/epochs")"
echo "# RESULT hr failover: first new line (beyond HRCOUNT $before) +$((t_new - t_kill)) ms after the kill (polled)"
done_testing
