#!/bin/bash
# A Linux guest protected between two hareplicated (A primary, B backup) at
# $HR_LINUX_EPOCH epochs; the primary host dies (SIGKILL of A's daemon and
# its workers, one process group).  The guest continues on B: the console,
# assembled by offset by console-sink from both hosts' tcp console streams,
# has no gap and no offset that came twice with other bytes; the heartbeat
# goes on from where the released output ended, whole and in order; the
# guest's uptime never goes back.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/linux/lib-linux.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root"
need_kvm
need_linux
SINK="$top_builddir/tests/linux/console-sink"
[ -x "$SINK" ] || skip_all "tests/linux/console-sink not built"
plan 9
PA=7301
PB=7302
PS=7303
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
"$SINK" $PS "$T/console" >"$T/sink.log" 2>&1 &
pids=$!
on_exit "kill -9 $pids 2>/dev/null"
TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || bail "certificates"
# A in a process group of its own: killing the group is the host's death
setsid "$HRD" -f $TLS_A --control "$CA" --listen "127.0.0.1:$PA" --state-dir "$T/a/state" >>"$T/a.log" 2>&1 &
pida=$!
"$HRD" -f $TLS_B --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" \
	--failover-timeout "$FAILOVER_MS" --console-default "tcp:127.0.0.1:$PS" >>"$T/b.log" 2>&1 &
pidb=$!
# the guest's workers first (B's runs it once promoted), then the daemons
on_exit 'kill_workers "$CA" "$CB"'
on_exit "kill -9 -- -$pida 2>/dev/null; kill -9 $pida $pidb 2>/dev/null"
wait_for "$T/a.log" "control $CA" 20 && wait_for "$T/b.log" "control $CB" 20
"$HR" start linux --control "$CA" --peer "127.0.0.1:$PB" --kernel "$KERNEL" --initrd "$INITRD" \
	--memory 256M --epoch "$EPOCH" --console "tcp:127.0.0.1:$PS" \
	--append "console=ttyS0 loglevel=4 hb_sleep=0.1" >"$T/start.out" 2>&1
rc=$?
ok '[ $rc = 0 ]' "start: the Linux guest is protected from A to B at $EPOCH epochs (rc=$rc)"
sed 's/^/# start: /' "$T/start.out"
ok 'wait_hb "$T/console" 30 "$BOOT_S"' "the guest boots on A; its released console beats (hb 30)"
"$HR" status --control "$CA" 2>&1 | sed 's/^/# A: /'
E="$T/a/state/linux.epochs"
diag "A's epochs at $EPOCH: $(epoch_figures "$E")"
diag "... the second half (the guest beating): $(epoch_figures "$E" $(($(wc -l <"$E") / 2 + 1)))"
before=$(last_hb "$T/console")
# the host dies: its daemon's process group and its VM worker (a process
# group of its own: its pid from A's status)
wpid=$("$HR" status --control "$CA" 2>/dev/null | sed -n 's/.* pid=\([0-9]*\).*/\1/p' | head -1)
t0=$(date +%s%N)
kill -9 -- "-$pida"
is_pid "$wpid" && kill -9 "$wpid"
at_kill=$(last_hb "$T/console")
ok 'is_pid "$wpid" && wait_true 10 sh -c "$(declare -f gone); gone $pida && gone $wpid"' "A's daemon and its worker ($wpid) are gone"
diag "SIGKILL of A's process group and its worker $wpid at hb $before ($at_kill released when A was dead)"
ok 'wait_true $((FAILOVER_MS / 1000 + 120)) sh -c "\"$HR\" status --control \"$CB\" | grep -q \"role=promoted state=promoted\""' \
	"B promotes itself once A is silent: role=promoted state=promoted (failover timeout $FAILOVER_MS ms)"
diag "B promoted $((($(date +%s%N) - t0) / 1000000)) ms after the kill (failover timeout $FAILOVER_MS ms)"
wait_hb "$T/console" $((at_kill + 1)) 300 &&
	diag "the first heartbeat after the kill (hb $((at_kill + 1))) arrived $((($(date +%s%N) - t0) / 1000000)) ms after it"
ok 'wait_hb "$T/console" $((before + 20)) 300' \
	"the guest continues on B (hb $before -> $((before + 20)))"
t1=$(date +%s%N)
diag "hb $((before + 20)) arrived $(((t1 - t0) / 1000000)) ms after the kill"
"$HR" status --control "$CB" 2>&1 | sed 's/^/# B: /'
ok '! grep -q -e contradiction -e gap "$T/sink.log"' "no console offset came twice with other bytes, no gap"
grep -e contradiction -e gap -e conn "$T/sink.log" | head -5 | sed 's/^/# sink: /'
r=$(hb_check "$T/console")
ok 'case "$r" in "hb 1.."*) true ;; *) false ;; esac' "the console is the heartbeat whole and in order, uptime never backwards ($r)"
ok '[ "$(tr -d "\000" <"$T/console" | grep -c "^GUEST-UP")" = 1 ]' "the guest booted once (B did not restart it)"
ok 'grep -q -i "promot" "$T/b.log"' "B's log records the promotion"
grep -i -E "promot|error|refus" "$T/b.log" | head -5 | sed 's/^/# b.log: /'
done_testing
