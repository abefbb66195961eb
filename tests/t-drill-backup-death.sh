#!/bin/sh
# The backup's worker dies (SIGKILL): the primary keeps the guest running
# unprotected - its console keeps growing, gap-free and consistent - and
# `hareplicate status` on the primary says unprotected.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces)"
need_kvm
plan 3

"$HR" drill --victim backup --kill-at mid-epoch --epochs 60 --memory 128M --timeout 30 \
	--seed 5 >"$T/out" 2>&1
r=$?
sed 's/^/# /' "$T/out"
ok 'grep -q "^  primary kept running: first line beyond the kill" "$T/out"' \
	"the primary's console keeps growing after the backup died"
ok 'grep -q "^  primary.s status after the backup.s death: state=unprotected$" "$T/out"' \
	"status on the primary says unprotected"
ok '[ $r = 0 ] && grep -q "^drill: PASS" "$T/out"' "contract held (exit $r)"
done_testing
