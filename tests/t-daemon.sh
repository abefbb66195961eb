#!/bin/sh
# hareplicated end to end on loopback: two daemons (A primary, B backup) with
# their own control sockets, ports and state dirs; `hareplicate start` a
# guest from A to B (ha_guest: memwalk on KVM, else the mem backend's), watch
# it get protected, feed both daemons bad input, kill the backup's worker, a
# manual failover, stop.  Also the daemon mechanics that need no VM: --help,
# refusing a second daemon, clear errors.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only)"
ha_guest
command -v python3 >/dev/null || skip_all "python3 not found"
plan 56

PA=$((20000 + $$ % 20000))
PB=$((PA + 1))
PDEAD=$((PA + 2))
A() { "$HR" "$@" --control "$CA"; }
B() { "$HR" "$@" --control "$CB"; }
alive() { kill -0 "$1" 2>/dev/null; }
# ctl_raw CONTROL BYTES-PYTHON-EXPR: send raw bytes, print the reply
ctl_raw() {
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(10)
try:
    s.sendall(eval(sys.argv[2]))
    s.shutdown(socket.SHUT_WR)
except OSError:
    pass
out = b""
while True:
    try:
        b = s.recv(4096)
    except OSError:
        break
    if not b:
        break
    out += b
sys.stdout.write(out.decode("ascii", "replace"))
' "$1" "$2"
}
garbage_tcp() { # PORT BYTES-PYTHON-EXPR
	python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
try:
    s.sendall(eval(sys.argv[2]))
    s.shutdown(socket.SHUT_WR)
    s.recv(4096)
except OSError:
    pass
' "$1" "$2"
}

# --- no daemon yet ---
ok '"$HRD" --help | grep -q -- "--failover-timeout" && "$HRD" --help | grep -q -- "--console-default"' \
	"hareplicated --help describes its options"
ok 'for c in start status failover stop; do "$HR" $c --help | grep -q "usage: hareplicate $c" || exit 1; done' \
	"hareplicate start/status/failover/stop --help"
"$HR" status --control "$T/none.sock" >/dev/null 2>"$T/err"; rc=$?
ok '[ $rc = 69 ] && grep -q "cannot reach hareplicated at $T/none.sock" "$T/err"' \
	"status without a daemon: clear error, exit 69 (rc=$rc)"

# --- two daemons ---
two_daemons 500
ok 'wait_for "$T/a.log" "control $CA" 10 && wait_for "$T/b.log" "control $CB" 10' "two daemons start"
ok '[ "$(stat -c %a "$CA")" = 600 ] && [ "$(stat -c %a "$T/a/run")" = 700 ]' \
	"control socket 0600 in a 0700 directory"
"$HRD" -f $TLS_A --control "$CA" --listen "127.0.0.1:$PDEAD" --state-dir "$T/a2" >"$T/err" 2>&1; rc=$?
ok '[ $rc != 0 ] && grep -q "another hareplicated answers on $CA" "$T/err" && alive $pida' \
	"a second daemon on the same control socket refuses to start"
ok 'A status --json | python3 -c "import json,sys; d=json.load(sys.stdin); assert d[\"vms\"] == []"' \
	"status --json with no VMs is valid JSON"

# --- bad input on the control socket ---
ok 'ctl_raw "$CA" "b\"v=1 cmd=frobnicate\\n\"" | grep -q "^error: unknown command"' "unknown command: error reply"
ok 'ctl_raw "$CA" "b\"v=1 cmd=status vm=%zz\\n\"" | grep -q "^error: malformed request"' "bad escape: error reply"
ok 'ctl_raw "$CA" "b\"v=7 cmd=status\\n\"" | grep -q "^error: unsupported protocol version"' "other protocol version: error reply"
ok 'ctl_raw "$CA" "b\"x\" * 200000" | grep -q "^error: request line too long"' "oversized request line refused"
ok 'ctl_raw "$CA" "bytes(range(256)) * 10" | grep -q "^error:"' "binary garbage: error reply"
ok 'alive $pida && A status >/dev/null' "daemon A survives bad control input"

# --- start errors ---
A start vm1 --backend xen --peer "127.0.0.1:$PB" --kernel "$GUESTS/memwalk.elf" 2>"$T/err"; rc=$?
ok '[ $rc != 0 ] && grep -q -e "no Xen backend" -e "not a Xen dom0" "$T/err"' "--backend xen (not in this build, or not a Xen dom0): a clear refusal"
A start vm1 --peer "127.0.0.1:$PDEAD" $HA_START --memory 64M 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "cannot reach peer 127.0.0.1:$PDEAD" "$T/err"' "unreachable peer: start fails clearly (rc=$rc)"
ok 'A status | grep -q "^no VMs"' "... and nothing was started"
A start vm1 --peer "127.0.0.1:$PB" --kernel "$T/no-such.elf" 2>"$T/err"; rc=$?
ok '[ $rc != 0 ] && grep -q "no-such.elf" "$T/err"' "missing kernel: clear error"
A start vm1 --peer "127.0.0.1:$PB" $HA_START --epoch 25ms --min-epoch 30ms 2>"$T/err"; rc=$?
ok '[ $rc = 2 ] && grep -q "bad --min-epoch" "$T/err"' "--min-epoch longer than --epoch: refused"

# --- garbage on the replication port ---
garbage_tcp "$PB" 'b"garbage\n"'
garbage_tcp "$PB" 'b"\xff" * 100000'
garbage_tcp "$PB" 'b"hrd=1 vm=../../etc\n"'
ok 'wait_for "$T/b.log" "TLS: refused client 127.0.0.1:[0-9]+: .*plain TCP" 10' "backup refuses and logs the garbage connections (plain TCP at a TLS port)"
sleep 0.5
ok 'alive $pidb && B status | grep -q "^no VMs"' "daemon B survives garbage on the replication port"

# --- protect a VM ---
A start vm1 --peer "127.0.0.1:$PB" $HA_START --memory 64M --epoch 25ms \
	--append "$(ha_append "rate=1000 wss=4M interval_ms=50")" >"$T/out" 2>"$T/err"; rc=$?
ok '[ $rc = 0 ] && grep -q "started vm1" "$T/out"' "start vm1 from A to B (rc=$rc $(cat "$T/err"))"
A start vm1 --peer "127.0.0.1:$PB" $HA_START 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "already exists" "$T/err"' "a second vm1 is refused"
ok 'wait_field vm1 state protected "$CA" 30' "A: vm1 becomes protected"
ok 'wait_field vm1 state backup "$CB" 10 && [ "$(field vm1 role "$CB")" = backup ]' "B: vm1 is a backup holding a committed epoch"
e1=$(field vm1 nr_epochs "$CA"); sleep 1; e2=$(field vm1 nr_epochs "$CA")
ok '[ "${e2:-0}" -gt "$((${e1:-0} + 5))" ]' "epochs count ($e1 -> $e2 in 1 s)"
ok 'A status --json | python3 -c "import json,sys; d=json.load(sys.stdin); v=d[\"vms\"][0]; assert v[\"role\"]==\"primary\" and v[\"last_epoch\"][\"pause_us\"]>0"' \
	"A: status --json parses and carries epoch stats"
ok 'B status vm1 --json | python3 -c "import json,sys; json.load(sys.stdin)"' "B: status VM --json parses"
# liveness: reported every second; protected for at least a second by now or soon
live_a() {
	A status vm1 --json | python3 -c "
import json, sys
v = json.load(sys.stdin)[\"vms\"][0]
assert v[\"last_heartbeat_age_ms\"] is not None and v[\"last_heartbeat_age_ms\"] < 1500, v
assert v[\"protected_since_ms\"] >= 1000 and v[\"in_state_ms\"] == v[\"protected_since_ms\"], v
assert v[\"witness\"] is None and v[\"peer\"]
"
}
live_b() {
	B status vm1 --json | python3 -c "
import json, sys
v = json.load(sys.stdin)[\"vms\"][0]
assert v[\"last_heartbeat_age_ms\"] is not None and v[\"last_heartbeat_age_ms\"] < 1500, v
"
}
ok 'wait_true 5 live_a' "A: status --json shows heartbeat age, protected since, peer, witness"
ok 'wait_true 5 live_b' "B: the backup hears the primary (heartbeat age)"

# --- daemon life cycle: the daemons go, the guests stay, new daemons adopt them ---
wa=$(field vm1 pid "$CA")
wb=$(field vm1 pid "$CB")
on_exit "is_pid '$wa' && kill -9 '$wa'; is_pid '$wb' && kill -9 '$wb'"
kill -TERM $pida $pidb
wait_exit $pida 10; ra=$rc
wait_exit $pidb 10; rb=$rc
ok '[ "$ra" = 0 ] && [ "$rb" = 0 ] && is_pid "$wa" && alive "$wa" && is_pid "$wb" && alive "$wb"' \
	"SIGTERM of both daemons: they exit 0; both workers keep running (A $wa, B $wb)"
s1=$(stat -c %s "$T/a/state/vm1.console")
grown() { [ "$(stat -c %s "$T/a/state/vm1.console")" -gt "$s1" ]; }
ok 'wait_true 10 grown' "with no daemon, released output keeps growing: epochs are still acknowledged"
two_daemons 500
ok 'wait_true 10 A status && wait_true 10 B status' "both daemons start again"
ok 'wait_field vm1 state protected "$CA" 10 && [ "$(field vm1 pid "$CA")" = "$wa" ] && grep -q "adopted worker $wa" "$T/a.log"' \
	"A adopts its running worker: vm1 protected, same pid"
ok 'wait_field vm1 state backup "$CB" 10 && [ "$(field vm1 pid "$CB")" = "$wb" ] && [ "$(field vm1 role "$CB")" = backup ]' \
	"B adopts the replica's worker: vm1 backup, same pid"
e1=$(field vm1 nr_epochs "$CA"); sleep 1; e2=$(field vm1 nr_epochs "$CA")
ok '[ "${e2:-0}" -gt "$((${e1:-0} + 5))" ]' "the adopted VM reports its epochs ($e1 -> $e2 in 1 s)"
A status vm1 | sed 's/^/# /'
A failover vm1 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "primary on this host" "$T/err"' "failover on the primary host is refused clearly"
garbage_tcp "$PB" 'b"garbage\n"'
ok 'ctl_raw "$CB" "b\"v=1 cmd=stop\\n\"" | grep -q "^error: no VM named"' "stop without vm=: error"
sleep 0.3
ok 'alive $pida && alive $pidb && [ "$(field vm1 state "$CA")" = protected ]' \
	"bad input while protected: both daemons up, vm1 still protected"
ok 'grep -q "+protected" "$T/a.log"' "A logs +protected"

# --- lose the backup: output held while no backup answers, then re-protection ---
# B's daemon goes first (SIGTERM ends the daemon only), so that nothing
# answers A's re-protection attempts while the backup is gone
wpid=$(field vm1 pid "$CB")
kill -TERM $pidb
wait_exit $pidb 10
ok 'kill_pid -9 "$wpid" && wait_field vm1 state unprotected "$CA" 10' \
	"kill -9 of B's worker (pid $wpid) with B's daemon down: A says vm1 unprotected"
ok 'grep -q "+backup-lost" "$T/a.log" && grep -q "+unprotected" "$T/a.log" && grep -q "+output-held" "$T/a.log"' \
	"A logs +backup-lost, +unprotected and +output-held"
held_event() { [ "$(field vm1 last_event "$CA")" = "+output-held" ]; }
ok 'wait_true 5 held_event' "A: status says why nothing is released: last_event +output-held"
# without a witness nothing proves the backup is gone rather than behind a
# torn link: the primary must hold the guest's output (one speaker)
s1=$(stat -c %s "$T/a/state/vm1.console")
sleep 2 # the window in which nothing may be released
s2=$(stat -c %s "$T/a/state/vm1.console")
ok '[ "$s2" = "$s1" ] && alive "$(field vm1 pid "$CA")"' \
	"the unprotected primary releases nothing ($s1 -> $s2 bytes) while its guest runs"
"$HRD" -f $TLS_B --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" \
	--failover-timeout 500 >>"$T/b.log" 2>&1 &
pidb=$!
on_exit "kill -9 $pidb 2>/dev/null"
ok 'wait_field vm1 state protected "$CA" 30 && grep -q "+reprotect-start" "$T/a.log"' \
	"B's daemon back: A re-protects vm1 by itself (+reprotect-start, protected)"
nb=$(field vm1 pid "$CB")
ok 'is_pid "$nb" && [ "$nb" != "$wpid" ] && [ "$(field vm1 state "$CB")" = backup ]' \
	"B holds vm1 again in a new worker ($wpid -> $nb)"
grown2() { [ "$(stat -c %s "$T/a/state/vm1.console")" -gt "$s2" ]; }
ok 'wait_true 10 grown2' "the held output is released once the new backup acknowledged an epoch"
# the console as the outside saw it: the guest's seq numbers never skip or repeat
seq_ok() {
	python3 - "$1" <<'PY'
import re, sys
seqs = [int(m) for m in re.findall(r"(?:memwalk: seq|mem: step)=(\d+)", open(sys.argv[1], errors="replace").read())]
bad = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
print("lines", len(seqs), "breaks", bad[:5])
sys.exit(1 if bad or len(seqs) < 10 else 0)
PY
}
ok 'seq_ok "$T/a/state/vm1.console"' "A's console across the hold and the re-protection: no gap, no repeat"
ok 'A stop vm1 >/dev/null && A status | grep -q "^no VMs"' "stop vm1 on A"
ok 'wait_field vm1 state stopped "$CB" 10 && B stop vm1 >/dev/null && B status | grep -q "^no VMs"' \
	"the replica on B ends with the primary's orderly stop (stopped, then removed)"

# --- manual failover ---
A start vm2 --peer "127.0.0.1:$PB" $HA_START --memory 64M --min-epoch 2ms \
	--append "$(ha_append "rate=1000 wss=4M interval_ms=50")" >/dev/null 2>"$T/err"
B start vm3 --peer "127.0.0.1:$PA" $HA_START --memory 64M \
	--append "$(ha_append "rate=1000 wss=4M interval_ms=50")" >/dev/null 2>"$T/err3"
ok 'wait_field vm2 state backup "$CB" 30' "vm2 protected: B holds a committed epoch"
ok 'wait_field vm3 state backup "$CA" 30 && [ "$(field vm3 state "$CB")" = protected ] && [ "$(field vm2 state "$CA")" = protected ]' \
	"both directions at once: A is primary of vm2 and backup of vm3, B the other way round"
ok 'A status --json | python3 -c "import json,sys; d=json.load(sys.stdin); v=[v for v in d[\"vms\"] if v[\"name\"]==\"vm2\"][0]; assert v[\"min_epoch_us\"]==2000"' \
	"start --min-epoch 2ms reaches the worker: status --json says min_epoch_us 2000"
B failover vm2 >"$T/out" 2>"$T/err"; rc=$?
ok '[ $rc = 0 ] && [ "$(field vm2 role "$CB")" = promoted ] && grep -q "+failover-start" "$T/b.log" && grep -q "+promoted" "$T/b.log"' \
	"failover vm2 on B: promoted, +failover-start and +promoted logged (rc=$rc $(cat "$T/err"))"
ok 'wait_for "$T/b/state/vm2.console" "(memwalk: seq|mem: step)=" 20' "the promoted guest's console goes to B's state dir"
A stop vm2 >/dev/null 2>&1
B stop vm2 >/dev/null 2>&1
no_vms_a() { A status | grep -q "^no VMs"; }
# the replica on A ends with its primary's orderly stop (as vm1's above):
# stopped first, then removed; A's demoted vm2 goes as its worker exits
ok 'B stop vm3 >/dev/null && wait_field vm3 state stopped "$CA" 10 && A stop vm3 >/dev/null &&
	{ A stop vm2 >/dev/null 2>&1; wait_true 10 no_vms_a; }' "stop vm3 on its primary B, then the replica on A"

# --- shut down ---
kill -TERM $pida $pidb
wait_exit $pida 20; ra=$rc
wait_exit $pidb 20; rb=$rc
ok '[ "$ra" = 0 ] && [ "$rb" = 0 ] && [ ! -e "$CA" ]' "SIGTERM: both daemons exit 0 and remove their sockets"
grep -E '^[0-9:.]+ (warning|error)' "$T/a.log" "$T/b.log" | grep -v outbuf | head -20 | sed 's/^/# /'
done_testing
