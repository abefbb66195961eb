#!/bin/sh
# `hareplicate drill --witness`: a witness (hareplicated --serve-witness) in
# the outside namespace that A and B reach directly, not through the tap.
# A torn link: both ask the witness, exactly one wins and speaks (B
# promoted and A demoted, or A keeps the lease and B's copy is stale).  The
# backup's host dies: A takes the lease and keeps speaking, then re-protects
# when B returns.  The witness stopped and the link torn: nobody speaks
# until the witness answers again, then exactly one does.  The console seen
# outside stays gap-free and consistent throughout.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces)"
ha_guest
plan 10

drill() {
	"$HR" drill $HA_DRILL --witness --kill-at mid-epoch --epochs 40 --after-lines 10 --memory 128M \
		--timeout 30 --seed 7 "$@"
}
contract='^  contract: gaps=0 two_contents=0 seq_breaks=0 self_check_errors=0 bad_lines=0'
race='^  race for the VM: \(B won: B promoted, A stood down (demoted)\|A won: A kept the lease and speaks, B.s copy is stale (failed)\); failover_ms=[0-9.]* .*; the loser released 0 lines$'

drill --fault torn >"$T/torn" 2>&1
r=$?
sed 's/^/# /' "$T/torn"
ok '[ $r = 0 ] && grep -q "^drill: PASS" "$T/torn"' "torn: the contract held (exit $r)"
ok 'grep -q "$race" "$T/torn"' "torn: exactly one side won the VM and speaks, the other never does"
ok 'grep -q "$contract" "$T/torn"' "torn: no gap, no offset with two contents, no break in the numbering"

drill --victim backup >"$T/bd" 2>&1
r=$?
sed 's/^/# /' "$T/bd"
ok '[ $r = 0 ] && grep -q "^drill: PASS" "$T/bd"' "backup death: the contract held (exit $r)"
ok 'grep -q "^  primary after the backup.s death (witness): state=unprotected standing=lease -> registered; released [1-9][0-9]* lines in 2000 ms" "$T/bd"' \
	"backup death: A holds the lease and keeps speaking, then registers B again"
ok 'grep -q "^  witness: backup died: owner=A backup=- holder=A; re-protected: owner=A backup=B" "$T/bd"' \
	"backup death: the witness drops B, then names it the backup again"
ok 'grep -q "$contract" "$T/bd"' "backup death: no gap, no offset with two contents"

drill --fault witness-down >"$T/wd" 2>&1
r=$?
sed 's/^/# /' "$T/wd"
ok '[ $r = 0 ] && grep -q "^drill: PASS" "$T/wd"' "witness down: the contract held (exit $r)"
ok 'grep -q "^  witness down, link torn: A unprotected (standing unreachable); 0 console lines reached the outside in 2000 ms" "$T/wd"' \
	"witness down: nobody speaks while nobody can reach the witness"
ok 'grep -q "$race" "$T/wd" && grep -q "$contract" "$T/wd"' \
	"witness back: exactly one side speaks, the stream stays consistent"
done_testing
