#!/bin/sh
# Failback: A's host dies, B takes over; A's daemon comes back and the
# promoted B takes it as its backup; `hareplicate failover` on A makes A the
# primary again (B's worker ends) and A takes B as its backup.  Checked from
# outside by `hareplicate drill --fault failback`: the guest goes on after
# each switch, the console stream stays gap-free and never contradicted, and
# only one host speaks at any moment (contract 4).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces)"
ha_guest
plan 4

"$HR" drill $HA_DRILL --fault failback --kill-at mid-epoch --epochs 40 --after-lines 10 --memory 128M \
	--timeout 30 --seed 7 >"$T/out" 2>&1
r=$?
sed 's/^/# /' "$T/out"
ok 'grep -q "^  failover_ms=[0-9.]* (kill -> first new line from B" "$T/out"' \
	"A's host died: B took over and the guest went on"
ok 'grep -q "^  failback: A.s daemon started again; B (promoted) protected by A after reprotect_ms=[0-9.]*; .failover. on A: switchback_ms=[0-9.]* (-> first new line from A), A protected by B after reprotect_ms=[0-9.]*; A released 0 lines while B spoke, B 0 after A spoke again$" "$T/out"' \
	"B re-protected with A, failed back to A, A re-protected with B; one speaker throughout"
ok 'grep -q "^  contract: gaps=0 two_contents=0 seq_breaks=0 self_check_errors=0 bad_lines=0" "$T/out"' \
	"the outside saw no gap, no offset with two contents, no break in the numbering"
ok '[ $r = 0 ] && grep -q "^drill: PASS failover_ms=" "$T/out"' "contract held (exit $r)"
done_testing
