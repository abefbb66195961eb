#!/bin/sh
# Three real daemons on loopback: a witness W (hareplicated --serve-witness)
# and hosts A and B that use it (--witness, --node).  A VM protected A -> B
# is registered at W; A losing its backup (B's daemon down, its worker
# killed) claims the lease and keeps releasing output; B's daemon back: A
# re-protects and registers again.  A's worker killed: B promotes with the
# lease, re-protects itself with A as its backup; failover on A brings the
# VM back to A (failback), which re-protects with B.  status --json shows
# the witness standing at every step.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only)"
ha_guest
command -v python3 >/dev/null || skip_all "python3 not found"
plan 17

PA=$((20000 + $$ % 20000))
PB=$((PA + 1))
PW=$((PA + 2))
WA="127.0.0.1:$PW"
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
A() { "$HR" "$@" --control "$CA"; }
B() { "$HR" "$@" --control "$CB"; }
# the witness's links are TLS too: `hareplicate witness` as host B
W() { "$HR" witness "$WA" $(tls_opts hostB) "$@"; }
# wit VM KEY: one field of the witness's record
wit() { W "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
wait_wit() {
	_end=$(($(date +%s) + $4))
	while [ "$(date +%s)" -lt "$_end" ]; do
		[ "$(wit "$1" "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	return 1
}
start_a() {
	_tls=$(tls_opts hostA) || return 1
	"$HRD" -f $_tls --control "$CA" --listen "127.0.0.1:$PA" --state-dir "$T/a/state" \
		--witness "$WA" >>"$T/a.log" 2>&1 &
	pida=$!
	on_exit "kill -9 $pida 2>/dev/null"
}
start_b() {
	_tls=$(tls_opts hostB) || return 1
	"$HRD" -f $_tls --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" \
		--witness "$WA" >>"$T/b.log" 2>&1 &
	pidb=$!
	on_exit "kill -9 $pidb 2>/dev/null"
}
TLS_W=$(tls_opts W) && tls_opts hostB >/dev/null || { echo "Bail out! cannot make certificates"; exit 1; }
"$HRD" -f --serve-witness $TLS_W --control "$T/w/run/w.sock" --listen "$WA" \
	--state-dir "$T/w/state" >>"$T/w.log" 2>&1 &
pidw=$!
on_exit "kill -9 $pidw 2>/dev/null"
start_a
start_b
console_size() { stat -c %s "$1" 2>/dev/null || echo 0; }
grows() { _s=$(console_size "$1"); sleep "$2"; [ "$(console_size "$1")" -gt "$_s" ]; }

ok 'wait_true 10 A status && wait_true 10 B status && wait_true 10 W' "witness, A and B up"
A start vm1 --peer "127.0.0.1:$PB" $HA_START --memory 64M --epoch 25ms \
	--append "$(ha_append "rate=1000 wss=4M interval_ms=50")" >/dev/null 2>"$T/err"
ok 'wait_field vm1 state protected "$CA" 30 && wait_wit vm1 owner hostA 10 && wait_wit vm1 backup hostB 10' \
	"vm1 protected A -> B; the witness knows owner hostA, backup hostB"
ok 'wait_field vm1 witness.standing registered "$CA" 5 && [ "$(field vm1 witness.peer_node "$CA")" = hostB ]' \
	"A's status: witness standing registered, peer node hostB"

# --- A loses its backup: with a witness it may keep speaking ---
wb=$(field vm1 pid "$CB")
kill -TERM $pidb
wait_exit $pidb 10
kill_pid -9 "$wb"
ok 'wait_field vm1 witness.standing lease "$CA" 10 && [ "$(field vm1 output_held "$CA")" = False ]' \
	"B gone: A holds the witness's lease and releases output (standing lease, output not held)"
ok 'grows "$T/a/state/vm1.console" 1 && [ "$(wit vm1 holder)" = hostA ] && [ "$(wit vm1 backup)" = - ]' \
	"A's console keeps growing; the witness: holder hostA, no backup (B's old copy is stale)"
ok 'grep -q "+lease-held" "$T/a.log" && grep -q "+output-released" "$T/a.log"' "A logs +lease-held and +output-released"
start_b
# (A gives the lease back once its new backup is registered: waited for,
# not sampled once)
ok 'wait_field vm1 state protected "$CA" 30 && wait_wit vm1 backup hostB 10 && wait_wit vm1 holder - 10' \
	"B's daemon back: A re-protects and registers hostB again (lease given back)"

# --- A's worker dies: B promotes with the lease, then takes A as its backup ---
wa=$(field vm1 pid "$CA")
kill_pid -9 "$wa"
ok 'wait_wit vm1 owner hostB 10' "A's worker killed: the witness grants hostB the VM"
ok 'wait_field vm1 state protected "$CB" 30 && [ "$(field vm1 role "$CB")" = primary ] && wait_field vm1 state backup "$CA" 10' \
	"B (promoted) re-protects itself: B primary protected, A its backup"
ok 'wait_wit vm1 backup hostA 10 && wait_field vm1 witness.standing registered "$CB" 5' \
	"the witness: owner hostB, backup hostA; B's standing registered"
ok 'grows "$T/b/state/vm1.console" 1' "the guest's output now leaves from B"

# --- failback: the operator moves the VM back to A ---
A failover vm1 >"$T/out" 2>"$T/err"; rc=$?
ok '[ $rc = 0 ] && wait_wit vm1 owner hostA 10' "failover vm1 on A: promoted with the lease (rc=$rc $(cat "$T/err"))"
ok 'wait_field vm1 state demoted "$CB" 10 || wait_field vm1 state backup "$CB" 30' "B stands down (demoted)"
ok 'wait_field vm1 state protected "$CA" 30 && [ "$(field vm1 role "$CA")" = primary ] && wait_field vm1 state backup "$CB" 30' \
	"A re-protects with B as its backup: A primary protected, B backup"
ok 'wait_wit vm1 backup hostB 10 && grows "$T/a/state/vm1.console" 1' \
	"the witness: owner hostA, backup hostB; the output leaves from A again"

# --- a stale copy may never run ---
ok 'W vm1 --claim hostB --primary hostC >/dev/null; [ $? = 1 ]' "the witness refuses a claim naming the wrong primary"
A stop vm1 >/dev/null 2>&1
kill -TERM $pida $pidb $pidw
wait_exit $pida 20; ra=$rc
wait_exit $pidb 20; rb=$rc
ok '[ "$ra" = 0 ] && [ "$rb" = 0 ]' "both hosts' daemons exit 0"
grep -E '^[0-9:.]+ (warning|error)' "$T/a.log" "$T/b.log" | head -30 | sed 's/^/# /'
done_testing
