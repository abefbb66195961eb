#!/bin/sh
# The backup's worker dies (SIGKILL).  Nothing proves to the primary that
# the backup is gone rather than behind a torn link, so it holds the
# guest's output: `status` says unprotected with +output-held, and not one
# more console line reaches the outside (one speaker, contract 4).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces)"
need_kvm
plan 3

"$HR" drill --victim backup --kill-at mid-epoch --epochs 60 --memory 128M --timeout 30 \
	--seed 5 >"$T/out" 2>&1
r=$?
sed 's/^/# /' "$T/out"
ok 'grep -q "^  primary held its output: 0 lines released" "$T/out"' \
	"after the backup died the primary releases nothing"
ok 'grep -q "^  primary.s status after the backup.s death: state=unprotected last_event=+output-held$" "$T/out"' \
	"status on the primary says unprotected, +output-held"
ok '[ $r = 0 ] && grep -q "^drill: PASS" "$T/out"' "contract held (exit $r)"
done_testing
