#!/bin/sh
# Peer links are authenticated (issue 8): against a TLS daemon B, each of
# (a) a hand-built plain HELLO, (b) a replay of a captured real session,
# (c) a certificate of the same CA whose name is not the node it claims, and
# one of another CA, (d) a daemon running --insecure, is refused, logged
# with its address, and leaves no VM entry, no file in B's state dir and no
# worker behind.  Then CA, pinned and PSK modes each protect a VM end to end
# (start -> protected -> failover).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only)"
ha_guest
command -v python3 >/dev/null || skip_all "python3 not found"
[ -z "${HR_TEST_INSECURE:-}" ] || skip_all "HR_TEST_INSECURE: this test is about TLS"
plan 27

PA=$((20000 + ($$ + 11) % 20000))
PB=$((PA + 1))
PC=$((PA + 2))
PR=$((PA + 3))
APPEND=$(ha_append "rate=1000 wss=4M interval_ms=50")
ctl() { _c=$1; shift; "$HR" "$@" --control "$_c"; }
# field CONTROL VM KEY: one value from `status --json`
field() {
	"$HR" status --json --control "$1" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
for v in d["vms"]:
    if v["name"] == sys.argv[1]:
        print(v[sys.argv[2]])
' "$2" "$3"
}
wait_field() { # CONTROL VM KEY VALUE SECONDS
	_end=$(($(date +%s) + $5))
	while [ "$(date +%s)" -lt "$_end" ]; do
		[ "$(field "$1" "$2" "$3")" = "$4" ] && return 0
		sleep 0.1
	done
	return 1
}
# start_daemon NAME PORT OPTIONS...: control $T/NAME/c.sock, log $T/NAME.log
start_daemon() {
	_name=$1 _port=$2
	shift 2
	"$HRD" -f "$@" --control "$T/$_name/c.sock" --listen "127.0.0.1:$_port" \
		--state-dir "$T/$_name/state" --failover-timeout 1000 >>"$T/$_name.log" 2>&1 &
	eval "pid_$_name=$!"
	on_exit "kill -9 $! 2>/dev/null"
	wait_for "$T/$_name.log" "control $T/$_name/c.sock" 10
}
# What B has: VM names, files in its state dir, its worker processes.
b_snapshot() {
	{
		"$HR" status --json --control "$T/b/c.sock" |
			python3 -c 'import json,sys; print(sorted(v["name"] for v in json.load(sys.stdin)["vms"]))'
		ls -A "$T/b/state"
		echo "workers: $(ps -o pid= --ppid "$pid_b" | wc -l)"
	} 2>&1
}
# nothing_left BEFORE-FILE: B comes back to what BEFORE-FILE recorded (bounded:
# a refused worker exits within the handshake deadline)
nothing_left() {
	_end=$(($(date +%s) + 10))
	while [ "$(date +%s)" -lt "$_end" ]; do
		b_snapshot >"$T/after"
		cmp -s "$1" "$T/after" && return 0
		sleep 0.1
	done
	diag "before: $(cat "$1" | tr '\n' ' ') after: $(cat "$T/after" | tr '\n' ' ')"
	return 1
}
# refusals_since N: B's log lines after line N that refuse a client
refused_since() { tail -n +"$(($1 + 1))" "$T/b.log" | grep -E "$2"; }

TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || exit 1
start_daemon a "$PA" $TLS_A
start_daemon b "$PB" $TLS_B
ok '[ $? = 0 ] && [ "$("$HR" status --json --control "$T/b/c.sock" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"daemon\"][\"transport\"])")" = tls-ca ]' \
	"daemons A and B run in CA mode; status --json says transport tls-ca"
b_snapshot >"$T/before"

# --- (a) an unauthenticated, hand-built preamble + HELLO ---
n=$(wc -l <"$T/b.log")
"$top_builddir/tests/hello-send" "$PB" evil $((64 << 20)) 1 >"$T/out" 2>&1
ok '! grep -q accepted "$T/out" && wait_true 5 refused_since "$n" "TLS: refused client 127\.0\.0\.1:[0-9]+: peer speaks plain TCP"' \
	"(a) plain HELLO: refused at the TLS handshake, logged with the address ($(cat "$T/out"))"
ok 'nothing_left "$T/before"' "(a) ... no VM entry, no file, no worker left on B"
ok '! grep -q "evil" "$T/b.log"' "(a) ... nothing it sent was read (its VM name appears nowhere)"

# --- (b) a captured real session A -> B, replayed at B ---
# a tap between A and B records what A sends
python3 - "$PR" "$PB" "$T/capture" >"$T/tap.log" 2>&1 <<'PY' &
import socket, sys, threading
lport, dport, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport)); ls.listen(8); ls.settimeout(60)
print("listening", flush=True)
cap = open(out, "wb")
lock = threading.Lock()
def pipe(a, b, f):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            if f:
                with lock:
                    if f.tell() < (4 << 20):
                        f.write(d); f.flush()
            b.sendall(d)
    except OSError:
        pass
    for x in (a, b):
        try: x.shutdown(socket.SHUT_RDWR)
        except OSError: pass
# every connection A makes (the daemon's reachability check, then the
# worker's session) goes through, A's bytes recorded
while True:
    try:
        c, _ = ls.accept()
    except OSError:
        break
    s = socket.create_connection(("127.0.0.1", dport), timeout=30)
    for args in ((s, c, None), (c, s, cap)):
        t = threading.Thread(target=pipe, args=args); t.daemon = True; t.start()
PY
tap=$!
on_exit "kill -9 $tap 2>/dev/null"
wait_for "$T/tap.log" listening 5
ctl "$T/a/c.sock" start rep --peer "127.0.0.1:$PR" $HA_START --memory 64M --epoch 25ms \
	--append "$APPEND" >"$T/out" 2>"$T/err"
rc=$?
ok '[ $rc = 0 ] && wait_field "$T/b/c.sock" rep state backup 30' \
	"(b) a real session A -> B through a tap: protected (rc=$rc $(cat "$T/err"))"
ok '[ "$(wc -c <"$T/capture")" -gt 10000 ] && ! grep -q "hrd=1" "$T/capture"' \
	"(b) the tap saw $(wc -c <"$T/capture") bytes from A, none of them readable (no preamble in clear)"
ctl "$T/a/c.sock" stop rep >/dev/null 2>&1
wait_field "$T/b/c.sock" rep state stopped 10
ctl "$T/b/c.sock" stop rep >/dev/null 2>&1
b_snapshot >"$T/before"
n=$(wc -l <"$T/b.log")
python3 - "$PB" "$T/capture" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
try:
    s.sendall(open(sys.argv[2], "rb").read())
    while s.recv(65536):
        pass
except OSError:
    pass
PY
ok 'wait_true 5 refused_since "$n" "TLS: refused client 127\.0\.0\.1:[0-9]+"' \
	"(b) the replayed stream is refused at the TLS handshake, logged with the address: $(refused_since "$n" "refused client" | head -1 | cut -c1-160)"
ok 'nothing_left "$T/before"' "(b) ... no VM entry, no file, no worker left on B"

# --- (c) another host's certificate ---
M=$(tls_opts mallory) || exit 1 # same CA, CN=mallory
n=$(wc -l <"$T/b.log")
"$top_builddir/tests/hello-send" "$PB" lie $((64 << 20)) 1 a "$T/pki/mallory/host.crt" \
	"$T/pki/mallory/host.key" "$T/pki/mallory/ca.crt" >"$T/out" 2>&1
ok 'grep -q "preamble refused: .*status=error" "$T/out" && wait_true 5 refused_since "$n" "peer 127\.0\.0\.1:[0-9]+ refused: it authenticated as .mallory. but claims to be node .a."' \
	"(c) same CA, CN mallory claiming node a: refused after the handshake, logged ($(cat "$T/out"))"
ok 'nothing_left "$T/before"' "(c) ... no VM entry, no file, no worker left on B"
mkdir -p "$T/other/ca" "$T/other/a"
"$HR" cert ca "$T/other/ca" >/dev/null && "$HR" cert host "$T/other/a" --name a --ca "$T/other/ca" >/dev/null
n=$(wc -l <"$T/b.log")
"$top_builddir/tests/hello-send" "$PB" foreign $((64 << 20)) 1 a "$T/other/a/host.crt" \
	"$T/other/a/host.key" "$T/pki/a/ca.crt" >"$T/out" 2>&1
ok 'grep -q "tls refused" "$T/out" && wait_true 5 refused_since "$n" "TLS: refused client 127\.0\.0\.1:[0-9]+: .*CA"' \
	"(c) a certificate of another CA (CN a): refused at the handshake, logged: $(refused_since "$n" "refused client" | head -1 | cut -c1-160)"
ok 'nothing_left "$T/before"' "(c) ... no VM entry, no file, no worker left on B"

# --- (d) a daemon with --insecure against the TLS daemon ---
start_daemon c "$PC" --node c --insecure
ok '[ $? = 0 ] && grep -q "INSECURE" "$T/c.log" && ctl "$T/c/c.sock" status | grep -q "^INSECURE"' \
	"--insecure: the daemon warns at start and text status says INSECURE"
ok '[ "$("$HR" status --json --control "$T/c/c.sock" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"daemon\"][\"transport\"])")" = insecure ]' \
	"--insecure: status --json says transport insecure"
n=$(wc -l <"$T/b.log")
ctl "$T/c/c.sock" start plain --peer "127.0.0.1:$PB" $HA_START --memory 64M >"$T/out" 2>"$T/err"
rc=$?
ok '[ $rc = 1 ] && ! grep -q started "$T/out" && wait_true 5 refused_since "$n" "TLS: refused client 127\.0\.0\.1:[0-9]+: peer speaks plain TCP"' \
	"(d) start from the --insecure daemon: fails (rc=$rc: $(cat "$T/err")), B logs the refusal"
ok 'nothing_left "$T/before" && ! ctl "$T/c/c.sock" status plain >/dev/null 2>&1' \
	"(d) ... no VM entry, no file, no worker left on B, nothing on C"

# --- refusing to start without a transport, or with a bad file ---
"$HRD" -f --control "$T/x.sock" --state-dir "$T/x" --listen 127.0.0.1:0 2>"$T/err"
rc=$?
ok '[ $rc = 2 ] && grep -q -- "--tls-cert" "$T/err" && grep -q -- "--tls-psk" "$T/err" && grep -q -- "--insecure" "$T/err"' \
	"no --tls-* nor --insecure: refuses to start, naming the options (rc=$rc)"
"$HRD" -f --node a --tls-cert "$T/pki/a/host.crt" --tls-key "$T/nokey" --tls-ca "$T/pki/ca/ca.crt" \
	--control "$T/x.sock" --state-dir "$T/x" --listen 127.0.0.1:0 2>"$T/err"
rc=$?
ok '[ $rc = 1 ] && grep -q "nokey" "$T/err"' "a missing key file: start-up error naming it (rc=$rc: $(cat "$T/err"))"

# --- each mode protects a VM end to end ---
# protect_and_failover A-CONTROL B-CONTROL B-PORT VM MODE
protect_and_failover() {
	pa_c=$1 pb_c=$2 vm=$4
	ctl "$pa_c" start "$vm" --peer "127.0.0.1:$3" $HA_START --memory 64M --epoch 25ms \
		--append "$APPEND" >"$T/out" 2>"$T/err"
	rc=$?
	ok '[ $rc = 0 ] && wait_field "$pa_c" "$vm" state protected 30 && wait_field "$pb_c" "$vm" state backup 30' \
		"$5: $vm protected A -> B (rc=$rc $(cat "$T/err"))"
	ctl "$pb_c" failover "$vm" >"$T/out" 2>"$T/err"
	rc=$?
	ok '[ $rc = 0 ] && [ "$(field "$pb_c" "$vm" role)" = promoted ]' \
		"$5: failover on B promotes $vm (rc=$rc $(cat "$T/err"))"
	ctl "$pa_c" stop "$vm" >/dev/null 2>&1
	ctl "$pb_c" stop "$vm" >/dev/null 2>&1
}
protect_and_failover "$T/a/c.sock" "$T/b/c.sock" "$PB" vmca "CA mode"
ok 'grep -q "TLS link to server 127.0.0.1:$PB (CA mode" "$T/a.log"' "CA mode: A logs the TLS link"

PP=$((PA + 4))
PQ=$((PA + 5))
mkdir -p "$T/pin/p" "$T/pin/q"
"$HR" cert host "$T/pin/p" --name p >/dev/null && "$HR" cert host "$T/pin/q" --name q >/dev/null
fp_p=$("$HR" cert fingerprint "$T/pin/p/host.crt")
fp_q=$("$HR" cert fingerprint "$T/pin/q/host.crt")
start_daemon p "$PP" --node p --tls-cert "$T/pin/p/host.crt" --tls-key "$T/pin/p/host.key" --tls-pin "$fp_q"
start_daemon q "$PQ" --node q --tls-cert "$T/pin/q/host.crt" --tls-key "$T/pin/q/host.key" --tls-pin "$fp_p"
protect_and_failover "$T/p/c.sock" "$T/q/c.sock" "$PQ" vmpin "pinned mode"

PS=$((PA + 6))
PU=$((PA + 7))
"$HR" cert psk "$T/cluster.psk" >/dev/null
start_daemon s "$PS" --node s --tls-psk "$T/cluster.psk"
start_daemon u "$PU" --node u --tls-psk "$T/cluster.psk"
protect_and_failover "$T/s/c.sock" "$T/u/c.sock" "$PU" vmpsk "PSK mode"
ok '[ "$("$HR" status --json --control "$T/u/c.sock" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"daemon\"][\"transport\"])")" = tls-psk ]' \
	"PSK mode: status --json says transport tls-psk"

ok 'kill -0 $pid_a && kill -0 $pid_b && kill -0 $pid_c' "A, B and C survived"
done_testing
