#!/bin/sh
# contrib/ocf/hareplicate outside a cluster: first the exit codes the agent
# must give exactly (OCF_NOT_RUNNING=7, OCF_RUNNING_PROMOTED=8,
# OCF_FAILED_PROMOTED=9, OCF_ERR_CONFIGURED=6, OCF_ERR_INSTALLED=5) and what
# demote really does (a final epoch the peer acknowledges, the guest paused
# in standby; promote resumes it; promoting the peer instead is a planned
# switchover after which this host is its backup); then resource-agents'
# ocf-tester, unmodified and all of it (meta-data valid against the OCF
# DTD; start, monitor, notify, promote, demote, promote again on the same
# host, stop, each twice).  The agent's host is "a"; its peer is a second
# hareplicated (cluster mode) started here, so promote really starts a
# protected VM (ha_guest: memwalk on KVM, else the mem backend's guest, the
# agent's backend=mem).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root"
ha_guest
command -v ocf-tester >/dev/null || skip_all "ocf-tester not found (resource-agents; quickstart.sh installs it)"
command -v xmllint >/dev/null || skip_all "xmllint not found"
AGENT="$top_srcdir/contrib/ocf/hareplicate"
APPEND=$(ha_append "rate=200 wss=1M interval_ms=100")
plan 30

PA=$((20000 + ($$ + 11) % 20000))
PB=$((PA + 1))
CB="$T/b/control.sock"
"$HRD" -f --cluster-mode --node b --insecure --control "$CB" --listen "127.0.0.1:$PB" \
	--state-dir "$T/b/state" --failover-timeout 1000 >>"$T/b.log" 2>&1 &
pidb=$!
# b's backup worker outlives its daemon (adopt.c): stopped first
on_exit "\"$HR\" stop vm1 --control \"$CB\" >/dev/null 2>&1; kill $pidb 2>/dev/null; sleep 0.2; kill -9 $pidb 2>/dev/null"
# the agent's own daemon (a): stopped whatever happens
# (its worker too, which would outlive it)
on_exit "\"$HR\" stop vm1 --control \"$T/a/control.sock\" >/dev/null 2>&1; [ -s $T/a/state/hareplicated.pid ] && kill -9 \$(cat $T/a/state/hareplicated.pid) 2>/dev/null"
ok 'wait_true 10 "$HR" status --control "$CB"' "peer daemon b (cluster mode) answers"

export OCF_ROOT=/usr/lib/ocf
# the exit codes themselves, by hand
ra() { # ra ACTION: the agent's exit status
	env OCF_RESKEY_vm=vm1 OCF_RESKEY_kernel="$HA_KERNEL" OCF_RESKEY_backend="$HA_GUEST" \
		OCF_RESKEY_peers="a=127.0.0.1:$PA b=127.0.0.1:$PB" OCF_RESKEY_memory=64M \
		OCF_RESKEY_epoch=50ms OCF_RESKEY_append="$APPEND" \
		OCF_RESKEY_daemon_options="--insecure --node a" OCF_RESKEY_state_dir="$T/a/state" \
		OCF_RESKEY_control="$T/a/control.sock" OCF_RESKEY_hareplicate="$HR" \
		OCF_RESKEY_hareplicated="$HRD" OCF_RESKEY_CRM_meta_on_node=a ${RA_ENV:-} \
		sh "$AGENT" "$1" >>"$T/ra.out" 2>&1
	echo $?
}
ok '[ "$(ra monitor)" = 7 ]' "monitor of a stopped instance: OCF_NOT_RUNNING (7)"
ok '[ "$(ra start)" = 0 ] && [ "$(ra monitor)" = 0 ]' "start: unpromoted, monitor OCF_SUCCESS (0)"
ok '[ "$(ra promote)" = 0 ] && [ "$(ra monitor)" = 8 ]' "promote: the VM starts here, monitor OCF_RUNNING_PROMOTED (8)"
ok 'wait_field vm1 state backup "$CB" 30' "the peer holds the backup copy"
ok 'wait_field vm1 state protected "$T/a/control.sock" 30' "the VM is protected"
ok '[ "$(ra promote)" = 0 ] && [ "$(ra monitor)" = 8 ]' "promote of a promoted instance: success, still 8"
CA="$T/a/control.sock"
ep() { field vm1 last_epoch.epoch "$1"; } # the last epoch acknowledged (a) / committed (b)
same_epoch() { [ -n "$(ep "$CA")" ] && [ "$(ep "$CA")" = "$(ep "$CB")" ]; }
ok '[ "$(ra demote)" = 0 ] && [ "$(field vm1 state "$CA")" = standby ] && [ "$(ra monitor)" = 0 ]' \
	"demote: the guest waits in standby here, monitor OCF_SUCCESS (0)"
ok 'wait_true 5 same_epoch && [ "$(field vm1 state "$CB")" = backup ]' \
	"demote: the peer committed the final epoch ($(ep "$CA")) and holds it as its backup"
n0=$(field vm1 nr_epochs "$CA")
ok '[ "$(ra demote)" = 0 ] && [ "$(field vm1 state "$CA")" = standby ] && [ "$(field vm1 nr_epochs "$CA")" = "$n0" ]' \
	"demote of a demoted instance: success, still standby, no epoch (the guest is paused)"
more_epochs() { [ "$(field vm1 nr_epochs "$CA")" -gt $((n0 + 10)) ]; }
ok '[ "$(ra promote)" = 0 ] && [ "$(ra monitor)" = 8 ] && wait_true 10 more_epochs && [ "$(field vm1 state "$CA")" = protected ]' \
	"promote of the standby: the guest runs on, protected, the epochs go on (8)"
# the guest dies under the promoted instance: FAILED_PROMOTED
wpid=$(field vm1 pid "$CA")
kill -9 "$wpid" 2>/dev/null
mon9() { [ "$(ra monitor)" = 9 ]; }
ok 'wait_true 10 mon9' "the guest's worker killed: monitor OCF_FAILED_PROMOTED (9)"
ok '[ "$(field vm1 state "$CB")" = backup ]' "the peer (cluster mode) did not promote itself"
ok '[ "$(ra demote)" = 0 ] && [ "$(ra monitor)" = 0 ]' "demote: unpromoted again (0)"
ok '[ "$(ra stop)" = 0 ] && [ "$(ra monitor)" = 7 ] && [ "$(ra stop)" = 0 ]' "stop, monitor 7, stop again 0"
ok '[ "$(RA_ENV=OCF_RESKEY_vm= ra validate-all)" = 6 ]' "validate-all without vm: OCF_ERR_CONFIGURED (6)"
ok '[ "$(RA_ENV=OCF_RESKEY_kernel=/nonexistent ra validate-all)" = 5 ]' "validate-all with a missing guest image: OCF_ERR_INSTALLED (5)"
ok '[ "$(RA_ENV=OCF_RESKEY_backend=qemu ra validate-all)" = 6 ]' "validate-all with an unknown backend: OCF_ERR_CONFIGURED (6)"

# a planned switchover: demoted here, the peer promoted (what the agent
# runs there); it continues from the final epoch and this host becomes its
# backup
"$HR" stop vm1 --control "$CB" >/dev/null 2>&1
ok '[ "$(ra start)" = 0 ] && [ "$(ra promote)" = 0 ] && wait_field vm1 state protected "$CA" 30 && wait_field vm1 state backup "$CB" 30' \
	"switchover: vm1 started again here, protected by the peer"
ok '[ "$(ra demote)" = 0 ] && wait_true 5 same_epoch' "switchover: demoted here; the peer holds the final epoch"
final=$(ep "$CA")
diag "switchover: final epoch $final"
out=$("$HR" promote vm1 --control "$CB" 2>&1)
ok 'echo "$out" | grep -q "runs here from epoch $final\$"' "switchover: the peer runs from the final epoch ($out)"
ok 'wait_field vm1 state backup "$CA" 30 && wait_field vm1 state protected "$CB" 30 && [ "$(ra monitor)" = 0 ]' \
	"switchover: the standby gave way, this host is the new primary's backup, the peer protected; monitor 0"
ok '[ "$(ra stop)" = 0 ] && [ "$(ra monitor)" = 7 ]' "stop of a backup instance: 0, then 7"
"$HR" stop vm1 --control "$CB" >/dev/null 2>&1

# a demote whose final epoch is never acknowledged (the peer's worker hangs)
# falls back to a drop: nothing unacknowledged leaves, the peer keeps its copy
ok '[ "$(ra start)" = 0 ] && [ "$(ra promote)" = 0 ] && wait_field vm1 state protected "$CA" 30 && wait_field vm1 state backup "$CB" 30' \
	"silent peer: vm1 started again here, protected"
bpid=$(field vm1 pid "$CB")
kill -STOP "$bpid"
on_exit "kill -CONT $bpid 2>/dev/null"
t0=$(date +%s)
ok '[ "$(ra demote)" = 0 ] && [ "$(field vm1 state "$CA")" = stopped ] && [ "$(ra monitor)" = 0 ]' \
	"silent peer: demote falls back to a drop after 10 s, monitor 0"
diag "silent peer: demote answered after $(($(date +%s) - t0)) s"
held=$(field vm1 last_epoch.epoch "$CA")
kill -CONT "$bpid"
b_held() { [ "$(field vm1 state "$CB")" = backup ] && [ "$(ep "$CB")" -le $((held + 1)) ]; }
ok 'wait_true 5 b_held' \
	"silent peer: woken, it still holds its backup copy, at most the one unacknowledged epoch past $held"
ok '[ "$(ra stop)" = 0 ]' "silent peer: stop 0"
"$HR" stop vm1 --control "$CB" >/dev/null 2>&1

# ocf-tester, all of it
set -- -o vm=vm1 -o kernel="$HA_KERNEL" -o backend="$HA_GUEST" \
	-o peers="a=127.0.0.1:$PA b=127.0.0.1:$PB" -o memory=64M -o epoch=50ms -o append="$APPEND" \
	-o daemon_options="--insecure --node a" -o state_dir="$T/a/state" -o control="$CA" \
	-o hareplicate="$HR" -o hareplicated="$HRD" -o CRM_meta_on_node=a
t0=$(date +%s)
ocf-tester -v -n vm1 "$@" "$AGENT" >"$T/ocf-tester.out" 2>&1
rc=$?
ok '[ $rc = 0 ] && grep -q "passed all tests" "$T/ocf-tester.out" && ! grep -q "^\* rc=" "$T/ocf-tester.out"' \
	"ocf-tester passes, every step (rc=$rc, $(($(date +%s) - t0)) s$(grep -E "^\* rc=" "$T/ocf-tester.out" | head -3 | tr '\n' ' '))"
[ $rc = 0 ] || sed 's/^/# /' "$T/ocf-tester.out" | tail -40
ok 'grep -q "Testing: demotion of demoted resource" "$T/ocf-tester.out" && grep -q "Testing: promotion of promoted resource" "$T/ocf-tester.out"' \
	"ocf-tester ran its promote / demote / promote-again steps"
ok '[ "$(field vm1 state "$CB")" = backup ]' \
	"ocf-tester's stop dropped this host's copy only: the peer still holds its backup"

ra stop >/dev/null
done_testing
