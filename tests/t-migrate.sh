#!/bin/sh
# hareplicate migrate between two hosts: two daemons (TLS), each in its own
# network namespace joined by a veth pair, a VM (ha_guest: memwalk on KVM,
# else the mem backend's guest) protected from A to B.  Errors (unknown VM,
# unreachable or own host, a second migration, MPLM controls), a cancelled
# migration (Ctrl-C of the CLI while the destination holds a committed
# copy), the migration A -> B (B held its backup: it is dropped, then B
# builds a copy as a migration target and takes over; the backup follows: A
# holds it afterwards), then back B -> A with A's daemon and worker killed
# before the hand-off (B keeps the VM), B -> A once A is back and B's backup
# again (extend-live, end-live), and A -> B with A's worker killed before
# the hand-off (B discards its copy).  Both sides log a digest of guest RAM
# at the hand-off: they must agree.  The console stream must go on without a
# gap or a contradiction from one host to the other, and only one host
# prints.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only)"
ha_guest
command -v python3 >/dev/null || skip_all "python3 not found"
command -v ip >/dev/null || skip_all "iproute2 not found"
plan 44

# hosts A and B: a network namespace each, a veth pair between them
NSA="hrmig-$$-a"
NSB="hrmig-$$-b"
IPA=10.215.$(($$ % 200)).1
IPB=10.215.$(($$ % 200)).2
on_exit "ip netns del $NSA 2>/dev/null; ip netns del $NSB 2>/dev/null"
# daemons and their VM workers (which outlive a daemon by design) carry
# this test's certificate paths
on_exit "pkill -9 -f '$T/pki/' 2>/dev/null"
ip netns add "$NSA" && ip netns add "$NSB" &&
	ip -n "$NSA" link set lo up && ip -n "$NSB" link set lo up &&
	ip -n "$NSA" link add eth0 type veth peer name eth0 netns "$NSB" &&
	ip -n "$NSA" addr add "$IPA/24" dev eth0 && ip -n "$NSB" addr add "$IPB/24" dev eth0 &&
	ip -n "$NSA" link set eth0 up && ip -n "$NSB" link set eth0 up ||
	{ echo "Bail out! cannot make the namespaces"; exit 1; }
# start_a / start_b: that host's hareplicated in its namespace (pida, pidb)
start_a() {
	ip netns exec "$NSA" "$HRD" -f $TLS_A --control "$CA" --listen "$IPA:$PA" \
		--state-dir "$T/a/state" >>"$T/a.log" 2>&1 &
	pida=$!
	on_exit "kill -9 $pida 2>/dev/null"
}
start_b() {
	ip netns exec "$NSB" "$HRD" -f $TLS_B --control "$CB" --listen "$IPB:$PB" \
		--state-dir "$T/b/state" --failover-timeout 500 >>"$T/b.log" 2>&1 &
	pidb=$!
	on_exit "kill -9 $pidb 2>/dev/null"
}

PA=$((20000 + ($$ + 7) % 20000))
PB=$((PA + 1))
PDEAD=$((PA + 2))
A() { "$HR" "$@" --control "$CA"; }
B() { "$HR" "$@" --control "$CB"; }
alive() { kill -0 "$1" 2>/dev/null; }
gone() { ! kill -0 "$1" 2>/dev/null; }
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
# the console as the outside saw it: the guest's seq numbers never skip or
# repeat within a file, no guest error (memwalk's errors=); with two files,
# the second starts at most one after the first ends and where they overlap
# (a promoted copy hands out again what may not have reached the sink) they
# agree
seq_ok() {
	python3 - "$@" <<'PY'
import re, sys
files = []
for f in sys.argv[1:]:
    lines = re.findall(r"(?:memwalk: seq|mem: step)=(\d+)(?: tsc=\d+ dirtied=\d+ errors=(\d+))?", open(f, errors="replace").read())
    files.append([(int(s), int(e or 0)) for s, e in lines])
for f, l in zip(sys.argv[1:], files):
    s = [x for x, _ in l]
    bad = [(a, b) for a, b in zip(s, s[1:]) if b != a + 1]
    errs = sum(e for _, e in l[-1:])
    print("#", f, "lines", len(s), "first", s[:1], "last", s[-1:], "breaks", bad[:5], "errors", errs)
    if bad or len(s) < 5 or errs:
        sys.exit(1)
if len(files) == 2:
    a, b = files
    if not (b[0][0] <= a[-1][0] + 1 and b[-1][0] > a[-1][0]):
        print("# gap or no progress between the files"); sys.exit(1)
PY
}

# --- no daemon ---
ok '"$HR" migrate --help | grep -q "usage: hareplicate migrate VM HOST"' "migrate --help"
"$HR" migrate vm1 2>"$T/err"; rc=$?
ok '[ $rc = 2 ] && grep -q "required" "$T/err"' "migrate without a destination: usage error, exit 2 (rc=$rc)"
"$HR" migrate vm1 127.0.0.1:1 --control "$T/none.sock" 2>"$T/err"; rc=$?
ok '[ $rc = 69 ] && grep -q "cannot reach hareplicated" "$T/err"' "no daemon: exit 69 (rc=$rc)"

# --- two daemons, vm1 protected from A to B ---
# (tests: both sides log a digest of guest RAM at the hand-off)
HR_TEST_MIGRATE_RAM_DIGEST=1
export HR_TEST_MIGRATE_RAM_DIGEST
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || { echo "Bail out! cannot make certificates"; exit 1; }
start_a
start_b
ok 'wait_for "$T/a.log" "control $CA" 10 && wait_for "$T/b.log" "control $CB" 10' "two daemons start"
A migrate nosuch "$IPB:$PB" 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "no VM named nosuch" "$T/err"' "unknown VM: refused, exit 1 (rc=$rc)"
A start vm1 --peer "$IPB:$PB" $HA_START --memory 64M --epoch 25ms \
	--append "$(ha_append "rate=1000 wss=4M interval_ms=50")" >/dev/null 2>"$T/err"
ok 'wait_field vm1 state protected "$CA" 30 && wait_for "$T/a/state/vm1.console" "${HA_SEQ}5\b" 20' \
	"vm1 protected from A to B, its console flows on A"
A migrate vm1 "$IPA:$PA" 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "itself" "$T/err" && [ "$(field vm1 state "$CA")" = protected ]' \
	"migrating to its own host: refused, nothing changes (rc=$rc $(cat "$T/err"))"
A migrate vm1 --end-live 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "no migration of vm1" "$T/err"' "--end-live without a migration: refused (rc=$rc)"
A migrate vm1 --cancel 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "no migration of vm1" "$T/err"' "--cancel without a migration: refused"
A migrate vm1 "$IPB:$PDEAD" 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "cannot reach $IPB:$PDEAD" "$T/err" && grep -q "keeps running here" "$T/err"' \
	"unreachable destination: fails with the reason, exit 1 (rc=$rc $(cat "$T/err"))"
ok 'wait_field vm1 state protected "$CA" 20 && grep -q "+migrate-failed" "$T/a.log"' \
	"... vm1 runs on and re-protects itself with B (+migrate-failed, protected)"

# --- a second migration while one runs; cancel by Ctrl-C ---
# (the CLI itself in the background, not a subshell: SIGINT must reach it)
HAREPLICATE_TEST_HANDOFF_HOLD_MS=4000 "$HR" migrate vm1 "$IPB:$PB" --control "$CA" \
	>"$T/mig1" 2>"$T/mig1.err" &
mpid=$!
target_holds() { [ "$(field vm1 state "$CB")" = backup ] && [ "$(field vm1 state "$CA")" = syncing ]; }
ok 'wait_true 20 target_holds && [ "$(field vm1 migrating_to "$CA")" = "$IPB:$PB" ]' \
	"migration in progress: B holds a committed copy as migration target; A's status says where to"
A migrate vm1 "$IPB:$PB" 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "already migrating" "$T/err"' "a second migration of vm1: refused (rc=$rc)"
kill -INT $mpid
wait_exit $mpid 20
ok '[ "$rc" = 1 ] && grep -q "cancelled" "$T/mig1.err"' "Ctrl-C of migrate cancels it: exit 1, cancelled (rc=$rc $(tail -1 "$T/mig1.err"))"
ok 'wait_field vm1 state stopped "$CB" 10 && [ "$(field vm1 role "$CB")" = backup ]' \
	"B discards its copy (stopped, never promoted)"
ok 'wait_field vm1 state protected "$CA" 30' "vm1 runs on A and is protected again"
ok '! grep -q "$HA_SEQ" "$T/b/state/vm1.console" 2>/dev/null' "B never printed"

# --- migrate A -> B ---
A migrate vm1 "$IPB:$PB" --json --max-bandwidth 1G >"$T/mig2" 2>"$T/mig2.err"; rc=$?
ok '[ $rc = 0 ] && grep -q "\"report\": true, \"result\": \"ok\"" "$T/mig2"' \
	"migrate vm1 A -> B: exit 0 with a report (rc=$rc $(tail -1 "$T/mig2.err"))"
ok 'grep -q "migration to $IPB:$PB requested, bandwidth capped" "$T/a.log"' "--max-bandwidth reached A's worker"
sed 's/^/# /' "$T/mig2"
a_backup_or_none() { r=$(field vm1 role "$CA"); [ -z "$r" ] || [ "$r" = backup ]; }
ok 'grep -q "+migrated" "$T/a.log" && a_backup_or_none' "A: its copy of vm1 ended (+migrated); A runs no vm1"
da=$(sed -n 's/.*guest RAM at the stop point xxh3=\([0-9a-f]*\).*/\1/p' "$T/a.log" | tail -1)
db=$(sed -n 's/.*guest RAM at the hand-off xxh3=\([0-9a-f]*\).*/\1/p' "$T/b.log" | tail -1)
ok '[ -n "$da" ] && [ "$da" = "$db" ] && ram_pages_equal "$T/a/state/vm1.ram-pages" "$T/b/state/vm1.ram-pages"' \
	"guest RAM on B at the hand-off equals A's at the stop point, page by page (xxh3 of all: A $da, B $db)"
ok 'wait_field vm1 state protected "$CB" 30 && [ "$(field vm1 role "$CB")" = primary ] && [ "$(field vm1 role "$CA")" = backup ] && [ "$(field vm1 peer "$CB")" = "$IPA:$PA" ]' \
	"the backup follows: B runs vm1 protected, A (the source's host) holds its backup ($(field vm1 peer "$CB"))"
ok 'python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r[\"result\"]==\"ok\" and r[\"downtime_ms\"]>0 and r[\"bytes\"]>0 and r[\"rounds\"]>=1 and len(r[\"round_pages\"])==min(r[\"rounds\"],24) and sum(x[\"never_sent\"]+x[\"dirty\"] for x in r[\"round_pages\"])>0" "$T/a/state/vm1.migration"' \
	"A: STATE-DIR/vm1.migration holds the report, with the live rounds and their pages from each set"
sa=$(size "$T/a/state/vm1.console")
sb=$(size "$T/b/state/vm1.console")
sleep 2
ok '[ "$(size "$T/a/state/vm1.console")" = "$sa" ] && [ "$(size "$T/b/state/vm1.console")" -gt "$sb" ]' \
	"only B prints now (A $sa bytes, unchanged; B grows from $sb)"
ok 'seq_ok "$T/a/state/vm1.console" "$T/b/state/vm1.console"' \
	"console: A's ends where B's begins, no gap, no contradiction, no guest error"

# --- back B -> A; the destination (A's daemon and worker) dies before the hand-off ---
HAREPLICATE_TEST_HANDOFF_HOLD_MS=5000 B migrate vm1 "$IPA:$PA" >"$T/mig3" 2>"$T/mig3.err" &
mpid=$!
a_holds() { [ "$(field vm1 state "$CA")" = backup ]; }
ok 'wait_true 20 a_holds' "migration B -> A: A holds a committed copy"
wa=$(field vm1 pid "$CA")
kill -9 $pida
kill_pid -9 "$wa"
wait_exit $mpid 20
ok '[ "$rc" = 1 ] && grep -q "failed" "$T/mig3.err" && grep -q "keeps running here" "$T/mig3.err"' \
	"destination killed: migrate exits 1 with the reason (rc=$rc $(cat "$T/mig3.err"))"
ok '[ "$(field vm1 state "$CB")" = unprotected ] && [ "$(field vm1 role "$CB")" = primary ]' \
	"vm1 keeps running on B"
# B was protected, but its backup confirmed that it dropped its copy when
# the migration began: no other copy exists, so B speaks alone
sb=$(size "$T/b/state/vm1.console")
grown_b() { [ "$(size "$T/b/state/vm1.console")" -gt "$sb" ]; }
ok 'wait_true 5 grown_b && [ "$(field vm1 output_held "$CB")" = False ] && [ "$(size "$T/a/state/vm1.console")" = "$sa" ]' \
	"B prints on (its old backup confirmed the drop: it speaks alone), A never did"

# --- back B -> A, A its backup host again ---
start_a
sb=$(size "$T/b/state/vm1.console")
ok 'wait_true 10 A status && wait_field vm1 state protected "$CB" 30 && wait_true 5 grown_b' \
	"A's daemon again: B re-protects vm1 with A and prints on"
B migrate vm1 "$IPA:$PA" --extend-live --json >"$T/mig4" 2>"$T/mig4.err" &
mpid=$!
extended() { [ "$(field vm1 migrating_to "$CB")" = "$IPA:$PA" ] && [ "$(field vm1 state "$CA")" = syncing ]; }
ok 'wait_true 20 extended && sleep 2.5 && extended' \
	"--extend-live: after 2.5 s the live phase still runs (A syncing, B migrating)"
B migrate vm1 --end-live >"$T/end" 2>&1; r=$?
ok '[ $r = 0 ] && grep -q "end of the live phase" "$T/end"' "--end-live is taken (exit $r)"
wait_exit $mpid 30
ok '[ "$rc" = 0 ] && grep -q "\"report\": true, \"result\": \"ok\"" "$T/mig4"' \
	"migrate vm1 B -> A (to its backup's host) ends after --end-live: exit 0, a report (rc=$rc $(tail -1 "$T/mig4.err"))"
# --json: every line an object; one per live round, numbered without a gap,
# as many as the report counts, each with its pages from each set
json_rounds_ok() {
	python3 - "$1" <<'PY'
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds = [o for o in objs if o.get("event") == "round"]
report = [o for o in objs if o.get("report")][-1]
nums = [o["round"] for o in rounds]
phases = [o["phase"] for o in objs if o.get("event") == "phase"]
print("# rounds", nums, "report", report["rounds"], "phases", phases)
assert nums == list(range(nums[0], nums[0] + len(nums))) and len(nums) == report["rounds"]
assert all(k in o for o in rounds for k in ("never_sent_sent", "dirty_sent", "zero_skipped", "never_sent_left", "dirty_rate", "bytes"))
assert rounds[-1]["never_sent_left"] == 0 and "live" in phases + [o["phase"] for o in rounds]
PY
}
ok 'json_rounds_ok "$T/mig4"' \
	"--json: one object per live round (numbered without a gap, as many as the report's rounds), one per phase"
sed 's/^/# /' "$T/mig4"
ok '[ "$(field vm1 role "$CA")" = primary ] && wait_field vm1 state protected "$CA" 30 && [ "$(field vm1 role "$CB")" = backup ]' \
	"vm1 runs on A now, protected, B holds its backup"
# A prints again: past the last line B printed, by 100 lines
top_b=$(last_seq "$T/b/state/vm1.console")
ok 'wait_for "$T/a/state/vm1.console" "$HA_SEQ$((top_b + 100))\b" 30' "A prints again (past B's last line, $top_b)"
ok 'memwalk_stream_ok "$T/a/state/vm1.console" "$T/b/state/vm1.console"' \
	"the console over A, B, A: every line from 1 on, none contradicted"

# --- the source dies before the hand-off: the destination discards ---
sb=$(size "$T/b/state/vm1.console")
old_wb=$(field vm1 pid "$CB")
HAREPLICATE_TEST_HANDOFF_HOLD_MS=5000 A migrate vm1 "$IPB:$PB" >"$T/mig5" 2>"$T/mig5.err" &
mpid=$!
b_holds() { [ "$(field vm1 state "$CB")" = backup ] && [ "$(field vm1 state "$CA")" = syncing ] && [ "$(field vm1 pid "$CB")" != "$old_wb" ]; }
ok 'wait_true 20 b_holds' "migration A -> B again: B holds a committed copy"
wa=$(field vm1 pid "$CA")
wb=$(field vm1 pid "$CB")
ok 'kill_pid -9 "$wa"' "kill -9 of the source's worker (A, pid $wa)"
wait_exit $mpid 20
st_b() { diag "B: $(B status vm1 2>&1 | head -1)"; }
ok 'wait_field vm1 state failed "$CB" 10 && wait_true 5 gone "$wb" && grep -q "went away before the hand-off" "$T/b.log" || { st_b; false; }' \
	"B discards its copy: failed, its worker ended, nothing promoted"
ok '[ "$(field vm1 role "$CB")" = backup ] && [ "$(size "$T/b/state/vm1.console")" = "$sb" ]' \
	"B never ran the guest (role backup, console unchanged)"
ok '! grep -q "+promoted" "$T/b.log"' "no promotion on B"
ok 'alive $pida && alive $pidb' "both daemons survive"

# --- errors after the VM is gone ---
A stop vm1 >/dev/null 2>&1
B stop vm1 >/dev/null 2>&1
A migrate vm1 "$IPB:$PB" 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "no VM named vm1" "$T/err"' "migrating a VM that no longer runs: refused (rc=$rc)"
grep -E '^[0-9:.]+ (warning|error)' "$T/a.log" "$T/b.log" | grep -v "refused a replica\|backup from .* refused" | head -20 | sed 's/^/# /'
done_testing
