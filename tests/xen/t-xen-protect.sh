#!/bin/bash
# A PVH domain protected between two hareplicated in dom0 of the nested Xen
# host (A primary, B backup, on loopback) at $HR_XEN_EPOCH epochs: the
# domain hrxt is created by xl, A's worker attaches to it and reads its
# console, B's builds the paused replica (hrxt-replica) with libxl.  Then the primary side dies:
# SIGKILL of A's daemon and worker and `xl destroy hrxt`.  B promotes its
# replica; the console, assembled by offset by console-sink from both sides'
# tcp console streams, has no gap and no offset that came twice with other
# bytes, and the counter goes on from where the released output ended.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/xen/lib-xen.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root"
[ -e /proc/xen/privcmd ] || [ -e /dev/xen/privcmd ] || skip_all "not in a Xen dom0 (make check-xen)"
CFG=${HR_XEN_CFG:-/guest/hrxt.cfg}
EPOCH=${HR_XEN_EPOCH:-50ms}
FAILOVER_MS=${HR_XEN_FAILOVER_MS:-5000}
BOOT_S=${HR_XEN_BOOT_S:-300}
SINK="$top_builddir/tests/xen/console-sink"
[ -x "$SINK" ] || SINK="$top_builddir/tests/linux/console-sink"
[ -x "$SINK" ] || skip_all "console-sink not built"
[ -r "$CFG" ] || skip_all "no domU config $CFG (make check-xen)"
plan 8

# epoch_figures FILE: interval, pause, ack and dirty pages over the epochs
# of a STATE-DIR/VM.epochs file (the session's first, after the sync, left out)
epoch_figures() {
	echo "$(pct_us interval interval_us "$1" 1), $(pct_us pause pause_us "$1" 1)," \
		"$(pct_us ack ack_us "$1" 1), $(pct_us "dirty pages" dirty_pages "$1" 1)"
}

PA=7401
PB=7402
PS=7403
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
"$SINK" $PS "$T/console" >"$T/sink.log" 2>&1 &
pids=$!
on_exit "kill -9 $pids 2>/dev/null; xl destroy hrxt 2>/dev/null; xl destroy hrxt-replica 2>/dev/null"
TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || bail "certificates"
setsid "$HRD" -f ${HR_XEN_DAEMON_OPTS--v} $TLS_A --control "$CA" --listen "127.0.0.1:$PA" --state-dir "$T/a/state" >>"$T/a.log" 2>&1 &
pida=$!
"$HRD" -f ${HR_XEN_DAEMON_OPTS--v} $TLS_B --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" \
	--failover-timeout "$FAILOVER_MS" --console-default "tcp:127.0.0.1:$PS" >>"$T/b.log" 2>&1 &
pidb=$!
on_exit "kill -9 -- -$pida 2>/dev/null; kill -9 $pida $pidb 2>/dev/null"
wait_for "$T/a.log" "control $CA" 20 && wait_for "$T/b.log" "control $CB" 20
# the operator's domain, created by xl; A's worker attaches to it
xl create "$CFG" >"$T/xl.out" 2>&1 || { sed 's/^/# xl: /' "$T/xl.out"; bail "xl create"; }
t0=$(date +%s)
"$HR" start hrxt --control "$CA" --peer "127.0.0.1:$PB" --backend xen --attach hrxt \
	--memory 128M --epoch "$EPOCH" --console "tcp:127.0.0.1:$PS" >"$T/start.out" 2>&1
rc=$?
ok '[ $rc = 0 ]' "start: domain hrxt (attached) protected from A to B at $EPOCH epochs (rc=$rc, $(($(date +%s) - t0)) s)"
sed 's/^/# start: /' "$T/start.out"
[ $rc = 0 ] || { tail -15 "$T/a.log" | sed 's/^/# a.log: /'; tail -15 "$T/b.log" | sed 's/^/# b.log: /'; }
xl list 2>&1 | sed 's/^/# xl: /'
ok 'wait_count "$T/console" 30 "$BOOT_S"' "the domU boots on A; its released console counts (30)"
# enough epochs for the figures below (bounded: they are not the contract)
wait_true 60 sh -c "[ \$(wc -l <\"$T/a/state/hrxt.epochs\" 2>/dev/null || echo 0) -ge 21 ]" ||
	diag "fewer than 20 epochs after 60 s"
"$HR" status --control "$CA" 2>&1 | sed 's/^/# A: /'
diag "A's epochs: $(epoch_figures "$T/a/state/hrxt.epochs")"
diag "B's commits: $(epoch_figures "$T/b/state/hrxt.epochs")"
grep -h -e "checkpoint stop" -e "checkpoint go" -e "pages sent" "$T/a.log" | tail -9 | sed "s/^/# a.log: /"
grep -h "received in" "$T/b.log" | tail -3 | sed "s/^/# b.log: /"
before=$(last_count "$T/console")
wpid=$("$HR" status --control "$CA" 2>/dev/null | sed -n 's/.* pid=\([0-9]*\).*/\1/p' | head -1)
t0=$(date +%s%N)
kill -9 -- "-$pida"
is_pid "$wpid" && kill -9 "$wpid"
xl destroy hrxt
diag "SIGKILL of A's process group and its worker $wpid, xl destroy hrxt, at HRCOUNT $before"
ok 'wait_true $((FAILOVER_MS / 1000 + 120)) sh -c "\"$HR\" status --control \"$CB\" | grep -q -E \"role=(promoted|primary)\""' \
	"B promotes itself once A is silent (failover timeout $FAILOVER_MS ms)"
xl list 2>&1 | sed 's/^/# xl: /'
ok 'wait_count "$T/console" $((before + 20)) 120' \
	"the domU continues on B (HRCOUNT $before -> $((before + 20)))"
t1=$(date +%s%N)
diag "HRCOUNT $((before + 20)) arrived $(((t1 - t0) / 1000000)) ms after the kill (reached $(last_count "$T/console"))"
"$HR" status --control "$CB" 2>&1 | sed 's/^/# B: /'
ok '! grep -q -e contradiction -e gap "$T/sink.log"' "no console offset came twice with other bytes, no gap"
grep -e contradiction -e gap -e conn "$T/sink.log" | head -5 | sed 's/^/# sink: /'
r=$(counter_check "$T/console")
ok 'case "$r" in "HRCOUNT 1.."*) true ;; *) false ;; esac' "the console is the counter whole and in order ($r)"
ok '[ "$(tr -d "\000" <"$T/console" | grep -c "^HRCOUNT-START")" = 1 ]' "the domU booted once (B did not restart it)"
ok 'xl list | grep -q "^hrxt "' "the promoted replica runs as hrxt"
grep -i -E "promot|error|refus|xen" "$T/b.log" | head -10 | sed 's/^/# b.log: /'
grep -i -E "error|refus|xen" "$T/a.log" | head -10 | sed 's/^/# a.log: /'
done_testing
