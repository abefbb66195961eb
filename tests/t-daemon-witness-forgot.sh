#!/bin/sh
# A witness that lost its table never loses the VM.  Three real daemons on
# loopback: a witness W and hosts A and B that use it.  vm1 is protected
# A -> B and registered at W; W is restarted with its table deleted (it
# knows nothing now).  A notices by itself and registers again (it asks W
# every few seconds while protected).  Then A's worker is killed: B claims
# the VM, W grants it, B promotes and its guest's output leaves from B; B
# never calls its copy stale.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only)"
ha_guest
command -v python3 >/dev/null || skip_all "python3 not found"
plan 8

PA=$((20000 + ($$ + 11) % 20000))
PB=$((PA + 1))
PW=$((PA + 2))
WA="127.0.0.1:$PW"
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
A() { "$HR" "$@" --control "$CA"; }
W() { "$HR" witness "$WA" $(tls_opts hostB) "$@"; }
# wit VM KEY: one field of the witness's record ("" when it has none)
wit() { W "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
wait_wit() {
	_end=$(($(date +%s) + $4))
	while [ "$(date +%s)" -lt "$_end" ]; do
		[ "$(wit "$1" "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	return 1
}
start_w() {
	"$HRD" -f --serve-witness $TLS_W --control "$T/w/run/w.sock" --listen "$WA" \
		--state-dir "$T/w/state" >>"$T/w.log" 2>&1 &
	pidw=$!
	on_exit "kill -9 $pidw 2>/dev/null"
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
console_size() { stat -c %s "$1" 2>/dev/null || echo 0; }
grows() { _s=$(console_size "$1"); sleep "$2"; [ "$(console_size "$1")" -gt "$_s" ]; }

TLS_W=$(tls_opts W) && tls_opts hostA >/dev/null && tls_opts hostB >/dev/null ||
	{ echo "Bail out! cannot make certificates"; exit 1; }
start_w
start_a
start_b

ok 'wait_true 10 A status && wait_true 10 "$HR" status --control "$CB" && wait_true 10 W' \
	"witness, A and B up"
# shellcheck disable=SC2086
A start vm1 --peer "127.0.0.1:$PB" $HA_START --memory 64M --epoch 25ms \
	--append "$(ha_append "rate=1000 wss=4M interval_ms=50")" >/dev/null 2>"$T/err"
ok 'wait_field vm1 state protected "$CA" 30 && wait_wit vm1 owner hostA 10 && wait_wit vm1 backup hostB 10' \
	"vm1 protected A -> B; the witness knows owner hostA, backup hostB"

# --- the witness loses its table ---
kill -9 $pidw
wait_exit $pidw 10
rm "$T/w/state/witness.table" 2>/dev/null && gone=yes || gone=no
start_w
ok 'wait_true 10 W && [ $gone = yes ]' "the witness is back with its table deleted"
ok 'wait_wit vm1 owner hostA 15 && wait_wit vm1 backup hostB 5' \
	"A registers vm1 again by itself: owner hostA, backup hostB"
ok 'wait_field vm1 witness.standing registered "$CA" 10 && [ "$(field vm1 state "$CA")" = protected ]' \
	"A's status: protected, witness standing registered"

# --- A's worker dies: B promotes with the lease ---
wa=$(field vm1 pid "$CA")
kill_pid -9 "$wa"
ok 'wait_wit vm1 owner hostB 15' "A's worker killed: the witness grants hostB the VM"
ok 'wait_field vm1 role primary "$CB" 15 && grows "$T/b/state/vm1.console" 1' \
	"B promoted: the guest's output leaves from B"
ok 'grep -q "+lease-held" "$T/b.log" && grep -q "+promoted" "$T/b.log" &&
	! grep -q "this copy is stale" "$T/b.log" && ! grep -q "unknown VM" "$T/b.log"' \
	"B's log: +lease-held and +promoted, never a stale copy nor an unknown VM"
grep -E '^[0-9:.]+ (warning|error)' "$T/a.log" "$T/b.log" | head -30 | sed 's/^/# /'
# the workers outlive their daemons by design: their pids first
workers="$(field vm1 pid "$CA") $(field vm1 pid "$CB")"
"$HR" stop vm1 --control "$CB" >/dev/null 2>&1
kill -TERM $pida $pidb $pidw
wait_exit $pida 20
wait_exit $pidb 20
wait_exit $pidw 20
for w in $workers; do
	is_pid "$w" && kill -9 "$w" 2>/dev/null
done
done_testing
