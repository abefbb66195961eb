#!/bin/sh
# Hostile and mistyped numbers on the command lines (issue 8): every one is
# refused with a message naming the option and the exit status the --help
# states for bad usage (2), before anything runs.  No daemon, no KVM needed.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
plan 23

K="$GUESTS/memwalk.elf"
# refuse RC-FILE CMD...: run CMD (bounded: a refusal is immediate), record rc and stderr
refuse() {
	timeout 10 "$@" >/dev/null 2>"$T/err"
	rc=$?
}

for v in 66 -1 1000 abc "" 0 "1x"; do
	refuse "$HR" run --kernel "$K" --vcpus "$v"
	ok '[ $rc = 2 ] && grep -q "bad --vcpus" "$T/err"' "run --vcpus '$v': usage error 2 (rc=$rc)"
done
refuse "$HR" run --kernel "$K" --timeout abc
ok '[ $rc = 2 ] && grep -q "bad --timeout" "$T/err"' "run --timeout abc: usage error 2 (rc=$rc)"
refuse "$HR" restore "$T/none.snap" --timeout -1
ok '[ $rc = 2 ] && grep -q "bad --timeout" "$T/err"' "restore --timeout -1: usage error 2 (rc=$rc)"
refuse "$HR" run --kernel "$K" --memory -1G
ok '[ $rc = 2 ] && grep -q "bad --memory" "$T/err"' "run --memory -1G: usage error 2 (rc=$rc)"
refuse "$HR" start vm --peer 127.0.0.1:1 --kernel "$K" --vcpus " 2" --control "$T/none.sock"
ok '[ $rc = 2 ] && grep -q "bad --vcpus" "$T/err"' "start --vcpus ' 2': usage error 2 (rc=$rc)"
refuse "$HR" start vm --peer 127.0.0.1:1 --kernel "$K" --memory 99999999999999999999 --control "$T/none.sock"
ok '[ $rc = 2 ] && grep -q "bad --memory" "$T/err"' "start --memory overflow: usage error 2 (rc=$rc)"

refuse "$HR" start vm --peer 127.0.0.1:1 --kernel "$K" --disk "$K,bogus" --control "$T/none.sock"
ok '[ $rc = 2 ] && grep -q "bad --disk.*unknown disk option .bogus." "$T/err"' "start --disk PATH,bogus: usage error 2 naming the option (rc=$rc)"
refuse "$HR" start vm --peer 127.0.0.1:1 --kernel "$K" --disk "$T/no-such.img" --control "$T/none.sock"
ok '[ $rc = 2 ] && grep -q "no-such.img: No such file" "$T/err"' "start --disk on a missing image: refused naming it (rc=$rc)"
refuse "$HR" start vm --peer 127.0.0.1:1 --kernel "$K" --disk "$K" --disk "$K" --disk "$K" --disk "$K" --disk "$K" --control "$T/none.sock"
ok '[ $rc = 2 ] && grep -q "more than 4 --disk" "$T/err"' "start with five --disk: refused (rc=$rc)"

# the daemon: a negative timeout used to wrap to 18446744073709551611 ms and start
refuse "$HRD" -f --failover-timeout -5 --control "$T/c.sock" --state-dir "$T/st" --listen 127.0.0.1:0
ok '[ $rc = 2 ] && grep -q "bad --failover-timeout" "$T/err"' "hareplicated --failover-timeout -5: usage error 2 (rc=$rc)"
refuse "$HRD" -f --lease-ms 5000x --control "$T/c.sock" --state-dir "$T/st" --listen 127.0.0.1:0
ok '[ $rc = 2 ] && grep -q "bad --lease-ms" "$T/err"' "hareplicated --lease-ms 5000x: usage error 2 (rc=$rc)"
refuse "$HRD" -f --listen 127.0.0.1:99999999999999999999 --control "$T/c.sock" --state-dir "$T/st"
ok '[ $rc != 0 ] && [ $rc != 124 ]' "hareplicated --listen with an overflowing port is refused (rc=$rc)"

# the drill: --epochs -1 used to wrap and run forever; give a daemon that does
# not exist so that a drill that got past parsing fails fast (rc 1, not 2)
refuse "$HR" drill --epochs -1 --daemon "$T/no-daemon"
ok '[ $rc = 2 ] && grep -q "bad --epochs" "$T/err"' "drill --epochs -1: usage error 2 (rc=$rc)"
refuse "$HR" drill --timeout abc --daemon "$T/no-daemon"
ok '[ $rc = 2 ] && grep -q "bad --timeout" "$T/err"' "drill --timeout abc: usage error 2 (rc=$rc)"
refuse "$HR" witness 127.0.0.1:1 vm --claim a --lease-ms -1
ok '[ $rc = 2 ]' "witness --lease-ms -1: usage error 2 (rc=$rc)"

# every command states its exit status for bad usage, and keeps it
bad=""
for c in run restore start status failover stop drill witness; do
	"$HR" $c --help | tr '\n' ' ' | grep -q "2 bad usage\|2 for bad usage" || bad="$bad $c(help)"
	"$HR" $c --no-such-option >/dev/null 2>&1
	r=$?
	[ $r = 2 ] || bad="$bad $c(rc=$r)"
done
ok '[ -z "$bad" ]' "every command's --help names exit status 2 for bad usage and returns it:$bad"
"$HRD" --help | tr '\n' ' ' | grep -q "2 bad usage"
ok '[ $? = 0 ]' "hareplicated --help names its exit status"
done_testing
