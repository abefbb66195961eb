#!/bin/sh
# The failures real networks and hosts produce, each checked from outside by
# `hareplicate drill` with the primary surviving the fault: a torn link (a
# middlebox closes both sides), a silent partition (nothing crosses, nothing
# closes) and a hung primary (SIGSTOP, let go after the backup took over);
# and a slow backup (its acks and heartbeats 300 ms late) that must cause no
# failover at all.
# In every case the backup takes over, the console seen outside stays
# gap-free and consistent, and the old primary never speaks again: at most
# one host releases output for the VM at any moment (contract 4).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces)"
need_kvm
plan 11

for f in torn partition hang; do
	"$HR" drill --fault $f --kill-at mid-epoch --epochs 40 --memory 128M --timeout 30 \
		--seed 7 >"$T/$f" 2>&1
	r=$?
	sed 's/^/# /' "$T/$f"
	ok '[ $r = 0 ] && grep -q "^drill: PASS" "$T/$f"' "$f: the backup took over, the contract held (exit $r)"
	ok 'grep -q "^  one speaker: A released 0 console lines after B took over (fault '$f';" "$T/$f"' \
		"$f: the old primary never spoke again"
	ok 'grep -q "^  contract: gaps=0 two_contents=0 seq_breaks=0 self_check_errors=0 bad_lines=0" "$T/$f"' \
		"$f: the outside saw no gap, no offset with two contents, no break in the numbering"
done

"$HR" drill --fault slow --kill-at mid-epoch --epochs 40 --memory 128M --timeout 30 \
	--seed 7 >"$T/slow" 2>&1
r=$?
sed 's/^/# /' "$T/slow"
ok '[ $r = 0 ] && grep -q "^drill: PASS" "$T/slow"' "slow backup: the contract held (exit $r)"
ok 'grep -q "^  slow backup (its frames 300 ms late): A.s ack latency [0-9.]* ms; A stayed protected and released [1-9][0-9]* lines in 3000 ms; no failover" "$T/slow"' \
	"slow backup: no failover, the primary stays protected and keeps releasing"
done_testing
