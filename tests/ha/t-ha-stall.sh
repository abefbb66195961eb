#!/bin/bash
# t-ha-stall.sh - `make check-ha`: no false failover while a healthy primary
# is starved or stopped for less than the failure timeout (docs/design.md,
# "Failure detection").  Two daemons on loopback (TLS), the default failure
# timeout, a guest at 25 ms epochs, and real faults on the primary's worker:
#   1. SIGSTOP for 60% of the failure timeout, 20 times;
#   2. held to 5% of a CPU for 5 s by a cgroup v1 CPU quota (cfs_quota_us);
#   3. four busy loops at nice -20 on both cores for 60 s in the worker's
#      own session (autogroup: loops in another session barely touch it),
#      then 60 s more in another session.
# Only 1 runs by default: 2 and 3 still end in false failovers (see
# below and docs/design.md) and run with HR_HA_STARVE=1.
# After each: the backup never promoted (no +primary-lost), the primary is
# still protected and its epochs went on (it was alive all along).
# The links are TLS.  Over TLS the 5% quota ends in a false failover: the TLS
# pump thread that carries the heartbeats is throttled with the rest of the
# worker (over plain TCP, HR_TEST_INSECURE=1, it passed 2 runs of 3); four
# nice -20 loops in the worker's own group starve its engine for seconds.
# "In the worker's own session": the worker has a session of its own
# (setsid), so the loops share its scheduling group through a cpu cgroup of
# their own instead (autogroups apply to the root cgroup only).
# The guest is memwalk on KVM when /dev/kvm is usable, else the mem
# backend's software guest (the same HA path: the faults hit the worker).
. "$(dirname "$0")/../lib.sh"
[ -n "${HR_TEST_KEEP:-}" ] && on_exit "cp -r $T $HR_TEST_KEEP"
[ "$(id -u)" = 0 ] || skip_all "needs root (cgroups, nice -20)"
CG=/sys/fs/cgroup/cpu
[ -w "$CG/cgroup.procs" ] && [ -e "$CG/cpu.cfs_quota_us" ] ||
	skip_all "no cgroup v1 cpu controller at $CG"
LOOP_S=${HR_HA_LOOP_S:-60}
PA=$((20000 + $$ % 5000))
PB=$((PA + 1))

TIMEOUT_MS=$("$HRD" --no-config --check-config --insecure 2>/dev/null |
	sed -n 's/^failover-timeout = //p')
[ -n "$TIMEOUT_MS" ] || { echo "Bail out! cannot read the default failover timeout"; exit 1; }
# HR_HA_STARVE_ONLY=quota|same|other: one starvation case alone (diagnosis)
want() { [ -z "${HR_HA_STARVE_ONLY:-}" ] || [ "$HR_HA_STARVE_ONLY" = "$1" ]; }
n=6
[ -n "${HR_HA_STARVE:-}" ] && want quota && n=$((n + 2))
[ -n "${HR_HA_STARVE:-}" ] && want other && n=$((n + 2))
[ -n "${HR_HA_STARVE:-}" ] && [ -n "${HR_HA_SAME_GROUP:-}" ] && want same && n=$((n + 2))
plan $n
diag "default failure timeout ${TIMEOUT_MS} ms; busy loops ${LOOP_S} s each"

CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || exit 1
# the daemons stay in this script's session: its autogroup is the worker's
"$HRD" -f $TLS_A --control "$CA" --listen "127.0.0.1:$PA" --state-dir "$T/a/state" >>"$T/a.log" 2>&1 &
pida=$!
"$HRD" -f $TLS_B --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" >>"$T/b.log" 2>&1 &
pidb=$!
on_exit "kill -9 $pida $pidb 2>/dev/null"
wait_true 10 "$HR" status --control "$CA" && wait_true 10 "$HR" status --control "$CB" ||
	{ echo "Bail out! daemons did not answer"; exit 1; }

if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	GUEST=(--kernel "$GUESTS/memwalk.elf" --append "rate=4000 wss=64M interval_ms=20")
	diag "guest: memwalk on KVM"
else
	GUEST=(--backend mem --kernel /dev/null --append "steps_per_s=1000 writes=32")
	diag "no usable /dev/kvm: the guest is the mem backend's software guest"
fi
"$HR" start vm1 --control "$CA" --peer "127.0.0.1:$PB" --epoch 25ms --memory 256M "${GUEST[@]}" \
	>/dev/null 2>"$T/start.err"
ok 'wait_field vm1 state protected "$CA" 60' "vm1 protected at 25 ms epochs ($(cat "$T/start.err"))"
W=$(field vm1 pid "$CA")
on_exit "kill -9 $W 2>/dev/null; pkill -9 -P $pidb 2>/dev/null"
diag "the primary's worker is pid $W"

epochs() { field vm1 nr_epochs "$CA"; }
promoted() { grep -cE '\+primary-lost|\+promoted' "$T/b.log"; }
# after a fault: no promotion, still protected, epochs went on since $1
unharmed() {
	[ "$(promoted)" = 0 ] && [ "$(field vm1 state "$CB")" = backup ] &&
		wait_field vm1 state protected "$CA" 5 && [ "$(epochs)" -gt "$1" ]
}

# 1. SIGSTOP for 60% of the failure timeout, 20 times
stop_ms=$((TIMEOUT_MS * 6 / 10))
e0=$(epochs)
# the stops timed in one process (a fork per sleep would stretch them);
# the next one comes after the primary acknowledged 3 more epochs
longest=$(python3 - "$W" "$stop_ms" "$CA" "$HR" <<'PY'
import os, signal, subprocess, sys, time, json
pid, ms, ctl, hr = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def epochs():
    out = subprocess.run([hr, "status", "--json", "--control", ctl], capture_output=True).stdout
    return json.loads(out)["vms"][0]["nr_epochs"]
longest = 0.0
for _ in range(20):
    t0 = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    time.sleep(ms / 1000)
    os.kill(pid, signal.SIGCONT)
    longest = max(longest, (time.monotonic() - t0) * 1000)
    e, end = epochs(), time.monotonic() + 5
    while epochs() < e + 3 and time.monotonic() < end:
        time.sleep(0.02)
print("%.0f" % longest)
PY
)
ok 'unharmed "$e0"' "SIGSTOP of the primary's worker for $stop_ms ms (longest $longest ms), 20 times: no failover ($(promoted) promotions, $(($(epochs) - e0)) epochs)"

if [ -n "${HR_HA_STARVE:-}" ]; then
	# 2. a CPU quota of 5% for 5 s
	if want quota; then
	G="$CG/hr-test-$$"
	mkdir "$G" && on_exit "echo $W >$CG/cgroup.procs 2>/dev/null; rmdir $G 2>/dev/null"
	echo 100000 >"$G/cpu.cfs_period_us"
	echo 5000 >"$G/cpu.cfs_quota_us"
	e0=$(epochs)
	echo "$W" >"$G/cgroup.procs"
	sleep 5 # the fault's length
	throttled=$(sed -n 's/^nr_throttled //p' "$G/cpu.stat")
	echo "$W" >"$CG/cgroup.procs"
	ok '[ "${throttled:-0}" -gt 0 ]' "the quota held the worker back ($throttled of $(sed -n 's/^nr_periods //p' "$G/cpu.stat") periods throttled)"
	ok 'unharmed "$e0"' "5 s at 5% of a CPU: no failover ($(promoted) promotions, $(($(epochs) - e0)) epochs meanwhile)"
	rmdir "$G"
	fi

	# 3. four busy loops at nice -20 in the worker's scheduling group
	busy() { # busy SECONDS [setsid]: 4 loops at nice -20, waited for
		for _ in 1 2 3 4; do
			$2 nice -n -20 timeout "$1" sh -c 'while :; do :; done' &
		done
		wait
	}
	autogroup() { sed -n 's/^\/autogroup-\([0-9]*\).*/\1/p' "/proc/$1/autogroup"; }
	cgroup_of() { sed -n 's/^[0-9]*:cpu:\(.*\)/\1/p' "/proc/$1/cgroup"; }
	if [ -n "${HR_HA_SAME_GROUP:-}" ] && want same; then
		S="$CG/hr-test-same-$$"
		mkdir "$S" && on_exit "echo $W >$CG/cgroup.procs 2>/dev/null; rmdir $S 2>/dev/null"
		echo "$W" >"$S/cgroup.procs"
		e0=$(epochs)
		t0=$(date +%s)
		(echo $BASHPID >"$S/cgroup.procs" && busy "$LOOP_S") &
		bpid=$!
		sleep 1 # the loops start
		lp=$(pgrep -f "while :; do :; done" | head -1)
		same=$([ -n "$lp" ] && [ "$(cgroup_of "$lp")" = "$(cgroup_of "$W")" ] && echo 1 || echo 0)
		wait "$bpid"
		echo "$W" >"$CG/cgroup.procs"
		rmdir "$S"
		ok '[ "$same" = 1 ]' "the busy loops share the worker's scheduling group ($(cgroup_of "$W"))"
		ok 'unharmed "$e0"' "$(( $(date +%s) - t0 )) s of 4 busy loops at nice -20 in the worker's group: no failover ($(promoted) promotions, $(($(epochs) - e0)) epochs meanwhile)"
	else
		diag "the loops in the worker's own group: HR_HA_SAME_GROUP=1 (a known false failover: the engine starves past max-pause)"
	fi

	# ... and in another session
	if want other; then
	e0=$(epochs)
	t0=$(date +%s)
	busy "$LOOP_S" setsid &
	bpid=$!
	sleep 1
	lp=$(pgrep -f "while :; do :; done" | head -1)
	other=$([ -n "$lp" ] && [ "$(autogroup "$lp")" != "$(autogroup "$W")" ] && echo 1 || echo 0)
	wait "$bpid"
	ok '[ "$other" = 1 ]' "the busy loops run in another autogroup"
	ok 'unharmed "$e0"' "$((  $(date +%s) - t0 )) s of 4 busy loops at nice -20 in another session: no failover ($(promoted) promotions, $(($(epochs) - e0)) epochs meanwhile)"
	fi
else
	diag "CPU starvation (a 5% quota, nice -20 busy loops): HR_HA_STARVE=1; known to fail over today (docs/design.md)"
fi

# the detector still works: a real death is seen within the timeout
t0=$(date +%s%N)
kill -STOP "$W"
ok 'wait_field vm1 state promoted "$CB" 10' "a primary stopped for good: the backup promotes"
ms=$((($(date +%s%N) - t0) / 1000000))
ok '[ "$ms" -lt $((TIMEOUT_MS + 1500)) ]' "after $ms ms (timeout $TIMEOUT_MS ms; status is polled)"
kill -9 "$W"
ok '[ "$(promoted)" -ge 1 ]' "the promotion is logged once the primary really stopped"
ok 'grep -q "+primary-lost" "$T/b.log"' "+primary-lost in B's log"
"$HR" stop vm1 --control "$CB" >/dev/null 2>&1
done_testing
