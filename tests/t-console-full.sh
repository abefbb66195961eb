#!/bin/sh
# A promoted backup whose console cannot be written (its state directory,
# which holds the console file, is full): the guest's output is held and
# retried, `status` shows the error, the bytes held and the retries, the
# daemon logs the failure once and the recovery once; at the bound of what
# is held the guest waits; once space returns the console has every line -
# no gap across the failover.  The
# mem backend's software guest (no KVM needed); B's state directory is a
# small tmpfs in a private mount namespace.
if [ -z "${HR_T_CONSOLE_NS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
	HR_T_CONSOLE_NS=1 exec unshare -m --propagation private sh "$0" "$@"
fi
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only, a tmpfs)"
[ -n "${HR_T_CONSOLE_NS:-}" ] || skip_all "unshare not found (a private mount namespace)"
command -v python3 >/dev/null || skip_all "python3 not found"
mkdir -p "$T/b/state"
mount -t tmpfs -o size=256k,mode=0700 hr-t-console "$T/b/state" 2>/dev/null ||
	skip_all "cannot mount a tmpfs"
on_exit "umount -l '$T/b/state' 2>/dev/null"
plan 15

PA=$((20000 + ($$ * 13) % 20000))
PB=$((PA + 1))
A() { "$HR" "$@" --control "$CA"; }
B() { "$HR" "$@" --control "$CB"; }
BCON="$T/b/state/vmc.console"

# console_is CHECK: B's `status --json` console object passes a Python check (c)
console_is() {
	B status vmc --json | python3 -c "
import json, sys
c = json.load(sys.stdin)['vms'][0]['console']
assert $1, c
"
}
# stream_ok A-FILE B-FILE: the mem guest's lines (mem: step=N...) in each
# file follow one another from the file's first, A's from 1; B's go on
# where A's stopped (an overlap repeats identical lines), together 1..max
# with no gap, and the guest ran on B for a while.
stream_ok() {
	python3 - "$1" "$2" <<'EOF'
import re, sys
steps = []
for f in sys.argv[1:3]:
    s = [int(m) for m in re.findall(r"mem: step=(\d+)\.*\n", open(f, errors="replace").read())]
    steps.append(s)
    print("#", f, len(s), "lines", s[:1], "..", s[-1:])
a, b = steps
ok = a and b and a[0] == 1
ok = ok and all(y == x + 1 for s in (a, b) for x, y in zip(s, s[1:]))
ok = ok and b[0] <= a[-1] + 1 and b[-1] > a[-1] + 200
sys.exit(0 if ok else 1)
EOF
}

# a small bound on the console's held output (64 MiB in use): at it the guest waits
MAXH=16384
export HR_TEST_CONSOLE_MAX_HELD=$MAXH
two_daemons 1000
ok 'wait_for "$T/a.log" "control $CA" 10 && wait_for "$T/b.log" "control $CB" 10' "two daemons start"
A start vmc --backend mem --kernel /bin/true --peer "127.0.0.1:$PB" --memory 16M --epoch 100ms \
	--console "file:$T/a.console" --append "steps_per_s=100 line_bytes=40" >"$T/out" 2>"$T/err"
rc=$?
ok '[ $rc = 0 ] && wait_field vmc state protected "$CA" 20 && wait_field vmc state backup "$CB" 10' \
	"vmc protected from A to B (rc=$rc $(cat "$T/err"))"
ok '[ -f "$BCON" ] && [ ! -s "$BCON" ]' "B's console file is in its state directory, empty"
ok 'console_is "c[\"error\"] is None and c[\"held_bytes\"] == 0"' "B: status shows a console without trouble"

# B's state directory fills up, then A's host dies (daemon and worker)
dd if=/dev/zero of="$T/b/state/filler" bs=4k 2>/dev/null
dd if=/dev/zero of="$T/b/state/filler" bs=1 oflag=append conv=notrunc 2>/dev/null
ok '[ "$(df --output=avail "$T/b/state" | tail -n 1)" -eq 0 ]' "B's state directory is full"
wa=$(field vmc pid "$CA")
kill_pid -9 "$wa"
kill -9 "$pida"
ok 'wait_field vmc state promoted "$CB" 15' "A's host dies: B promotes"

failing='c["error"] == "No space left on device" and c["held_bytes"] > 0 and c["retries"] >= 1 and c["failing_since_s"] > 0'
ok 'wait_true 10 console_is "$failing"' "B: status --json shows the console's error, bytes held, retries, since when"
ok 'B status vmc | grep -q "console file:$BCON: error=\"No space left on device\" failing_since=.* held_bytes=[1-9]"' \
	"B: status (text) shows them too"
B status vmc | sed 's/^/# /'
B status vmc --json | python3 -c 'import json, sys; print("#", json.load(sys.stdin)["vms"][0]["console"])'
h1=$(field vmc console.held_bytes "$CB")
ok 'wait_true 10 console_is "c[\"held_bytes\"] >= $MAXH"' \
	"the guest runs on, its output held ($h1 bytes, then up to the bound, $MAXH)"
# at the bound the sink takes nothing more: the output waits in the engine
# (one record in hand may pass: a run of ~20 ms of output); watched for 1.5 s
hmax=0
end=$(($(date +%s%N) / 1000000 + 1500))
while [ "$(($(date +%s%N) / 1000000))" -lt "$end" ]; do
	h=$(field vmc console.held_bytes "$CB")
	[ "${h:-0}" -gt "$hmax" ] && hmax=$h
done
ok '[ "$hmax" -ge "$MAXH" ] && [ "$hmax" -le $((MAXH + 1024)) ]' \
	"at the bound the sink takes no more: held stays at $hmax bytes (bound $MAXH)"
ok '[ "$(grep -c "vmc: console file:$BCON: No space left on device: its output is held" "$T/b.log")" = 1 ]' \
	"B logged the failure once, naming the VM, the sink and the error"

# space returns: everything held lands
rm -f "$T/b/state/filler"
ok 'wait_true 10 console_is "c[\"error\"] is None and c[\"held_bytes\"] == 0"' \
	"space back: nothing held, no error"
ok '[ "$(grep -c "vmc: console file:$BCON: written again after" "$T/b.log")" = 1 ]' \
	"B logged the recovery once"
# the guest ran on B for a while: at least 200 lines after A's last
ok 'wait_true 10 stream_ok "$T/a.console" "$BCON"' "no gap: A's console then B's, every line once in order"
stream_ok "$T/a.console" "$BCON"
grep "vmc: console " "$T/b.log" | sed 's/^/# /'
B stop vmc >/dev/null 2>&1
ok '! B status vmc --json | grep -q "\"pid\": [1-9]"' "B's VM stopped"
done_testing
