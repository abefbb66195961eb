#!/bin/sh
# `hareplicate drill --disk`: the mem guest writes stamped blocks to a disk
# on A; B's daemon keeps its copy in its --disk-dir.  After a host death, a
# torn link and a silent partition the promoted guest on B reads back every
# block it knows it wrote: the report's disk: line says errors=0 with blocks
# > 0, and the drill passes.  A failback puts the copy back on A's images,
# synchronised when A becomes a backup again: A's check says errors=0 too.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces)"
command -v ip >/dev/null || skip_all "iproute2 (ip) not installed"
plan 10

"$HR" drill --disk --net --epochs 5 >"$T/conflict" 2>&1
r=$?
ok '[ $r = 2 ] && grep -q -- "--disk runs the mem backend.s disk guest" "$T/conflict"' \
	"--disk with another guest is refused (exit $r)"
ok '"$HR" drill --help | grep -q -- "--disk .*implies --mem"' "drill --help describes --disk"

for f in kill torn partition; do
	"$HR" drill --disk --fault $f --kill-at mid-epoch --epochs 40 --memory 128M --timeout 30 \
		--failover-timeout 1500 --seed 7 >"$T/$f" 2>&1
	r=$?
	sed 's/^/# /' "$T/$f"
	ok '[ $r = 0 ] && grep -q "^drill: PASS" "$T/$f" && grep -q "^drill 1: .* disk=yes .*disk_writes=4 disk_flush=1" "$T/$f"' \
		"$f --disk: the backup took over, the contract held (exit $r)"
	ok 'grep -Eq "^  disk: B blocks=[1-9][0-9]* errors=0$" "$T/$f"' \
		"$f --disk: the promoted guest found every block it wrote ($(grep "^  disk:" "$T/$f"))"
done
"$HR" drill --disk --fault failback --kill-at mid-epoch --epochs 40 --memory 128M --timeout 30 \
	--failover-timeout 1500 --seed 7 >"$T/failback" 2>&1
r=$?
sed 's/^/# /' "$T/failback"
ok '[ $r = 0 ] && grep -q "^drill: PASS" "$T/failback"' "failback --disk: B took over, then A again (exit $r)"
ok 'grep -Eq "^  disk: .*A blocks=[1-9][0-9]* errors=0" "$T/failback" && ! grep -Eq "^  disk: .*errors=[1-9]" "$T/failback"' \
	"failback --disk: A's synchronised images hold every block ($(grep "^  disk:" "$T/failback"))"
done_testing
