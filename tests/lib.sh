# lib.sh - TAP helpers for the shell tests.  Source it; then plan N, ok COND MSG.
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
HR="$top_builddir/hareplicate"
GUESTS="$top_builddir/tests/guests"
T=$(mktemp -d "${TMPDIR:-/tmp}/hr-test.XXXXXX")
_n=0
_failed=0
_cleanup_cmds=""
cleanup() { eval "$_cleanup_cmds"; rm -rf "$T"; }
trap cleanup EXIT
on_exit() { _cleanup_cmds="$_cleanup_cmds
$*"; }
plan() { echo "1..$1"; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
ok() {
	_n=$((_n + 1))
	if eval "$1"; then echo "ok $_n - $2"; else echo "not ok $_n - $2"; _failed=$((_failed + 1)); fi
}
diag() { echo "# $*"; }
done_testing() { [ "$_failed" -eq 0 ]; }
# wait_for FILE REGEX SECONDS: poll (bounded) until a line of FILE matches.
wait_for() {
	_end=$(( $(date +%s%N) / 1000000 + $3 * 1000 ))
	while [ "$(( $(date +%s%N) / 1000000 ))" -lt "$_end" ]; do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
# wait_exit PID SECONDS: wait (bounded) for a background child; sets $rc.
wait_exit() {
	_end=$(( $(date +%s) + $2 ))
	while kill -0 "$1" 2>/dev/null && [ "$(date +%s)" -lt "$_end" ]; do sleep 0.05; done
	if kill -0 "$1" 2>/dev/null; then kill -9 "$1"; wait "$1" 2>/dev/null; rc=timeout; return 1; fi
	wait "$1"; rc=$?
	return 0
}
need_kvm() { [ -r /dev/kvm ] && [ -w /dev/kvm ] || skip_all "/dev/kvm not usable"; }
