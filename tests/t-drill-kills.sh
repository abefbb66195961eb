#!/bin/sh
# Failover drills: the primary host (daemon + worker) is killed with SIGKILL
# at each exact moment of the epoch protocol (mid-epoch, during-send,
# after-send, after-ack) and at two seeded random moments; every drill must
# keep the contract as the outside world sees it (hareplicate drill checks:
# the guest continues on the backup, errors=0, the console stream gap-free,
# seq +1 throughout, no offset with two contents).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces)"
ha_guest
plan 6

drill() { # NAME ARGS...: one drill; ok if it exits 0 and reports PASS
	name=$1
	shift
	"$HR" drill $HA_DRILL --epochs 60 --memory 128M --timeout 30 "$@" >"$T/$name.out" 2>&1
	r=$?
	sed 's/^/# /' "$T/$name.out"
	ok '[ $r = 0 ] && grep -q "^drill: PASS failover_ms=" "$T/$name.out"' "drill $name (exit $r)"
}

drill mid-epoch --kill-at mid-epoch --seed 11
drill during-send --kill-at during-send --seed 12
drill after-send --kill-at after-send --seed 13
drill after-ack --kill-at after-ack --seed 14
drill random-1 --kill-at random --seed 101
drill random-2 --kill-at random --seed 202
done_testing
