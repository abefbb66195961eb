#!/bin/sh
# The backup's host dies (SIGKILL of B's daemon and worker).  Nothing proves
# to the primary that the backup is gone rather than behind a torn link, so
# it holds the guest's output: `status` says unprotected with +output-held,
# and not one more console line reaches the outside (one speaker, contract
# 4).  Then B's daemon is started again: A re-protects by itself, the held
# output reaches the outside without a gap, and B never speaks.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces)"
ha_guest
plan 5

"$HR" drill $HA_DRILL --victim backup --kill-at mid-epoch --epochs 40 --after-lines 10 --memory 128M \
	--timeout 30 --seed 5 >"$T/out" 2>&1
r=$?
sed 's/^/# /' "$T/out"
ok 'grep -q "^  primary held its output: 0 lines released" "$T/out"' \
	"after the backup died the primary releases nothing"
ok 'grep -q "^  primary.s status after the backup.s death: state=unprotected last_event=+output-held$" "$T/out"' \
	"status on the primary says unprotected, +output-held"
ok 'grep -q "^  re-protection: B.s daemon started again; A protected after reprotect_ms=[0-9.]* (+reprotect-start), its held output reached the outside after release_ms=[0-9.]*; B released 0 lines$" "$T/out"' \
	"B's daemon back: A re-protects by itself, its held output reaches the outside, B never speaks"
ok 'grep -q "^  contract: gaps=0 two_contents=0 seq_breaks=0 self_check_errors=0 bad_lines=0" "$T/out"' \
	"the outside saw no gap, no offset with two contents, no break in the numbering"
ok '[ $r = 0 ] && grep -q "^drill: PASS" "$T/out"' "contract held (exit $r)"
done_testing
