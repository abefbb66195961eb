#!/bin/bash
# b-xen-hr.sh - hareplicate's side of `make bench-xen`: the steps of
# tests/xen/t-xen-protect.sh (domain hrxt created by xl, A's worker attaches
# to it, B builds the paused replica; both daemons in this dom0 on
# loopback), measured for the comparison with `xl remus` (b-xen-remus.sh):
# epoch interval/pause/ack p50/p99 from A's STATE-DIR/hrxt.epochs, the
# counter's line gaps on the released console, and the failover time: from
# the kill of the primary side (SIGKILL of A's daemon and worker, `xl
# destroy hrxt`) to the first counter line beyond the last one released
# before it, in the console file console-sink assembles, followed and
# stamped with dom0's clock in ms by bench/b-stamp.
# Environment: HR_XEN_EPOCH (50ms), HR_XEN_FAILOVER_MS (B's
# --failover-timeout, 5000), HR_BENCH_RUN_S (seconds of epochs, 60),
# HR_BENCH_LINK (tls, the default, or plain: --insecure, the link `xl
# remus` has; bench/b-xen-hr-plain.sh).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/xen/lib-xen.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root"
[ -e /proc/xen/privcmd ] || [ -e /dev/xen/privcmd ] || skip_all "not in a Xen dom0 (make bench-xen)"
CFG=${HR_XEN_CFG:-/guest/hrxt.cfg}
EPOCH=${HR_XEN_EPOCH:-50ms}
FAILOVER_MS=${HR_XEN_FAILOVER_MS:-5000}
RUN_S=${HR_BENCH_RUN_S:-60}
BOOT_S=${HR_XEN_BOOT_S:-300}
SINK="$top_builddir/tests/xen/console-sink"
STAMP=$top_builddir/bench/b-stamp
[ -x "$STAMP" ] || skip_all "bench/b-stamp not in the image (HR_XEN_BINS=bench/b-stamp)"
[ -x "$SINK" ] || skip_all "console-sink not in the image"
[ -r "$CFG" ] || skip_all "no domU config $CFG"
[ -n "$(pids_of "\(^\|/\)xenconsoled ")" ] && skip_all "xenconsoled runs: the backend must be the console's only reader"
plan 4

PA=7411
PB=7412
PS=7413
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
"$SINK" $PS "$T/console" >"$T/sink.log" 2>&1 &
pids=$!
"$STAMP" -f "$T/console" >"$T/con" &
pids="$pids $!"
on_exit "kill -9 $pids 2>/dev/null; xl destroy hrxt 2>/dev/null; xl destroy hrxt-replica 2>/dev/null"
if [ "${HR_BENCH_LINK:-tls}" = plain ]; then
	TLS_A=--insecure TLS_B=--insecure
else
	TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || { echo "Bail out! certificates"; exit 1; }
fi
setsid "$HRD" -f $TLS_A --control "$CA" --listen "127.0.0.1:$PA" --state-dir "$T/a/state" >>"$T/a.log" 2>&1 &
pida=$!
setsid "$HRD" -f $TLS_B --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" \
	--failover-timeout "$FAILOVER_MS" --console-default "tcp:127.0.0.1:$PS" >>"$T/b.log" 2>&1 &
pidb=$!
# (B's worker too: while it lives, the promoted domain, once destroyed,
# stays a dying "(null)" domain)
on_exit "kill -9 -- -$pida -$pidb 2>/dev/null; kill -9 $pida $pidb \$bw 2>/dev/null"
wait_for "$T/a.log" "control $CA" 20 && wait_for "$T/b.log" "control $CB" 20
xl create "$CFG" >"$T/xl.out" 2>&1 || { sed 's/^/# xl: /' "$T/xl.out"; echo "Bail out! xl create"; exit 1; }
"$HR" start hrxt --control "$CA" --peer "127.0.0.1:$PB" --backend xen --attach hrxt \
	--memory 128M --epoch "$EPOCH" --console "tcp:127.0.0.1:$PS" >"$T/start.out" 2>&1
rc=$?
ok '[ $rc = 0 ]' "hrxt protected from A to B at $EPOCH epochs"
[ $rc = 0 ] || { tail -15 "$T/a.log" | sed 's/^/# a.log: /'; tail -15 "$T/b.log" | sed 's/^/# b.log: /'; }
ok 'wait_count "$T/con" 30 "$BOOT_S"' "the domU boots on A; its released console counts (30)"
t_first=$(now_ms)
n0=$(wc -l <"$T/a/state/hrxt.epochs")
sleep "$RUN_S"
# the epochs of the measured window only (the boot's excepted)
tail -n +$((n0 + 1)) "$T/a/state/hrxt.epochs" >"$T/epochs"
before=$(last_count "$T/con")
wpid=$("$HR" status --control "$CA" 2>/dev/null | sed -n 's/.* pid=\([0-9]*\).*/\1/p' | head -1)
t_kill=$(now_ms)
kill -9 -- "-$pida"
is_pid "$wpid" && kill -9 "$wpid"
xl destroy hrxt
ok 'wait_count "$T/con" $((before + 1)) $((FAILOVER_MS / 1000 + 120))' "the domU continues on B after HRCOUNT $before"
ok 'wait_true 30 sh -c "\"$HR\" status --control \"$CB\" | grep -q -E \"role=(promoted|primary)\""' "B promoted"
bw=$("$HR" status --control "$CB" 2>/dev/null | sed -n 's/.* pid=\([0-9]*\).*/\1/p' | head -1)
is_pid "$bw" || bw=
# gaps between released console lines: output is released per committed
# epoch, so lines come in bursts; the gap is what a watcher waits
echo "# RESULT hr: link ${HR_BENCH_LINK:-tls}, epoch $EPOCH, B's failover timeout $FAILOVER_MS ms, $(wc -l <"$T/epochs") epochs in $(((t_kill - t_first) / 1000)) s"
echo "# RESULT hr epochs: $(pct_us interval interval_us "$T/epochs"); $(pct_us pause pause_us "$T/epochs"); $(pct_us ack ack_us "$T/epochs")"
echo "# RESULT hr $(pct_us "dirty pages per epoch" dirty_pages "$T/epochs")"
awk -v a="$t_first" -v b="$t_kill" '$1 >= a && $1 <= b && $(NF - 1) == "HRCOUNT" { if (p) print $1 - p; p = $1 }' "$T/con" |
	pct "hr console line gaps, released (guest period 100 ms):" | sed 's/^/# RESULT /'
echo
awk -v a="$t_first" -v b="$t_kill" '$1 >= a && $1 <= b && $(NF - 1) == "HRCOUNT" { n++ } END {
	printf "# RESULT hr guest progress: %.1f counter lines/s released in the window (10/s unprotected)\n", n * 1000 / (b - a) }' "$T/con"
# the last line out before the kill, by its stamp (lines released between
# the sample above and the kill count as before it)
before=$(awk -v k="$t_kill" '$1 <= k && $(NF - 1) == "HRCOUNT" { if ($NF + 0 > m) m = $NF + 0 } END { print m + 0 }' "$T/con")
wait_count "$T/con" $((before + 10)) 60
first_new=$(awk -v b="$before" '$(NF - 1) == "HRCOUNT" && $NF > b { print $1, $NF; exit }' "$T/con")
echo "# RESULT hr failover: first new line (beyond the last released before the kill, HRCOUNT $before) $([ -n "$first_new" ] && echo "+$((${first_new%% *} - t_kill)) ms (HRCOUNT ${first_new#* })" || echo never) after the kill"
tenth=$(awk -v b="$before" '$(NF - 1) == "HRCOUNT" && $NF >= b + 10 { print $1, $NF; exit }' "$T/con")
echo "# RESULT hr failover, 10th new line (HRCOUNT $((before + 10)): ~1 s of the guest's own time beyond the last line out, so surely run by the backup) $([ -n "$tenth" ] && echo "+$((${tenth%% *} - t_kill)) ms" || echo never) after the kill"
grep -h -i "promot" "$T/b.log" | head -1 | sed 's/^/# b.log: /'
done_testing
