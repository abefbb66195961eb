#!/bin/sh
# `hareplicated --serve-witness` on loopback, driven by `hareplicate witness`:
# register, claims granted and denied, a lease that expires and a promotion
# after it, a witness killed with SIGKILL that comes back with its table and
# its leases, garbage and silent clients, a table file it must not trust.
# The protocol itself, so the witness runs --insecure here (raw clients
# send lines); its TLS is tests/t-witness-tls.sh.  Needs no root and no
# /dev/kvm.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
command -v python3 >/dev/null || skip_all "python3 not found"
plan 29

PW=$((40000 + $$ % 20000))
WA="127.0.0.1:$PW"
W() { "$HR" witness "$WA" --insecure "$@"; }
start_witness() {
	"$HRD" -f --serve-witness --insecure --control "$T/run/w.sock" --listen "$WA" --state-dir "$T/w" \
		>>"$T/w.log" 2>&1 &
	pidw=$!
	on_exit "kill -9 $pidw 2>/dev/null"
}
alive() { kill -0 "$1" 2>/dev/null; }
# raw PYTHON-BYTES-EXPR: send bytes on a fresh connection, print the reply
raw() {
	python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
out = b""
try:
    s.sendall(eval(sys.argv[2]))
    s.shutdown(socket.SHUT_WR)
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
except OSError:
    pass
sys.stdout.write(out.decode("ascii", "replace"))
' "$PW" "$1"
}

# --- no witness yet ---
ok '"$HRD" --help | grep -q -- "--serve-witness" && "$HRD" --help | grep -q -- "--lease-ms" &&
	"$HR" witness --help | grep -q "usage: hareplicate witness"' "--help describes the witness"
"$HRD" -f --node "../x" --control "$T/run/x.sock" >/dev/null 2>"$T/err"; rc=$?
ok '[ $rc = 2 ] && grep -q "bad --node" "$T/err"' "a bad --node is refused (rc=$rc)"
W vm1 >/dev/null 2>"$T/err"; rc=$?
ok '[ $rc = 69 ] && grep -q "cannot ask the witness at $WA" "$T/err"' "no witness: exit 69 (rc=$rc)"

# --- a witness ---
start_witness
ok 'wait_for "$T/w.log" "witness on $WA" 10' "the witness starts"
ok '[ -z "$(W)" ]' "its table is empty"
ok 'W vm1 --register A --backup B | grep -q "^vm1 owner=A backup=B holder=- term=1 .*granted=1"' \
	"register vm1: A primary, B backup, term 1"
W vm1 --register B >"$T/out"; rc=$?
ok '[ $rc = 1 ] && grep -q "granted=0 why=owner is A" "$T/out"' "register by B: denied, owner is A"
W vm1 --claim B --primary A --lease-ms 1000 >"$T/out"; rc=$?
ok '[ $rc = 0 ] && grep -q "owner=B backup=- holder=B term=2 lease_ms=1000 .*granted=1" "$T/out"' \
	"B claims as A's backup: granted, B owns vm1, term 2"
W vm1 --claim A >"$T/out"; rc=$?
ok '[ $rc = 1 ] && grep -q "why=lease held by B for" "$T/out"' "A claims: denied, the lease is B's"
ok 'grep -q "vm vm1: +owner-changed: A -> B" "$T/w.log" &&
	grep -q "vm vm1: +lease-granted: B for 1000 ms" "$T/w.log" &&
	grep -q "vm vm1: +lease-denied: claim by A: lease held by B" "$T/w.log"' \
	"the log names the VM and the nodes: +owner-changed, +lease-granted, +lease-denied"

# --- the lease ends ---
ok 'wait_for "$T/w.log" "vm vm1: \+lease-expired: B.s lease ended" 5' "B's lease expires: +lease-expired"
ok 'W vm1 | grep -q "holder=- term=2 lease_ms=1000 remaining_ms=0"' "no holder after the expiry"
W vm1 --claim A >"$T/out"; rc=$?
ok '[ $rc = 1 ] && grep -q "why=stale primary: owner is B" "$T/out"' \
	"A is still denied after the lease: B owns vm1 now"
ok 'W vm1 --register B --backup A | grep -q "owner=B backup=A holder=- term=3"' \
	"B registers A as its backup (term 3)"
ok 'W vm1 --claim A --primary B --lease-ms 800 | grep -q "owner=A backup=- holder=A term=4 .*granted=1"' \
	"A, B's backup now, promotes: granted (term 4)"

# --- the table outlives the witness ---
W vm2 --claim A --lease-ms 30000 >/dev/null
W vm3 --register C --backup D >/dev/null
W >"$T/before"
ok '[ "$(stat -c %a "$T/w/witness.table")" = 600 ] && [ "$(wc -l <"$T/before")" = 3 ]' \
	"three VMs in the table, saved 0600"
kill -9 "$pidw"
wait "$pidw" 2>/dev/null
start_witness
ok 'wait_for "$T/w.log" "3 VM\(s\) in the table" 10' "after SIGKILL the witness restarts with 3 VMs"
W >"$T/after"
ok '[ "$(cut -d" " -f1-5 "$T/before")" = "$(cut -d" " -f1-5 "$T/after")" ]' \
	"owners, backups, holders and terms are kept"
ok 'grep -q "vm vm2: witness restarted: A.s lease counts as held for 30000 ms" "$T/w.log"' \
	"a lease held at the crash counts as held a full lease from the restart"
W vm2 --claim B >"$T/out"; rc=$?
ok '[ $rc = 1 ] && grep -q "why=lease held by A" "$T/out"' "so another node's claim on vm2 is denied"
ok 'W vm2 --release A | grep -q "holder=- .*granted=1" && W vm2 --forget A | grep -q granted=1 &&
	! W vm2 >/dev/null' "A releases its lease and forgets vm2"

# --- bad clients ---
ok 'raw "b\"hrw=1 op=fence vm=vm1 node=A\\n\"" | grep -q "^hrw=1 error=unknown%20op"' "unknown op: an error reply"
ok 'raw "b\"hrw=2 op=query vm=vm1\\n\"" | grep -q "^hrw=1 error=unsupported%20protocol"' \
	"another protocol version: an error reply"
ok 'raw "b\"hrw=1 op=query vm=\" + b\"a\" * 100000" | grep -q "error=request%20line%20too%20long" &&
	raw "bytes(range(256)) * 4" | grep -q "^hrw=1 error=" &&
	raw "b\"hrw=1 op=claim vm=../x node=A primary= lease_ms=99999999999999999999\\n\"" | grep -q "error="' \
	"an over-long line, binary garbage, a bad name: error replies"
ok 'raw "b\"hrw=1 op=query vm=vm1\"" | grep -q "^hrw=1 granted=1 vm=vm1 owner=A"' \
	"a request ended by EOF instead of a newline is answered"
# 40 clients that connect and send nothing; one of them waits to be dropped
python3 -c '
import socket, sys, time
ss = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(40)]
ss[0].settimeout(10)
t = time.monotonic()
try:
    got = ss[0].recv(10)
except OSError:
    got = b"timeout"
print("%s %.1f" % (got == b"", time.monotonic() - t))
' "$PW" >"$T/idle" &
pidi=$!
ok 'wait_true 2 W vm1' "silent clients do not block the others"
wait_exit "$pidi" 15
ok '[ "$rc" = 0 ] && awk "{ exit !(\$1 == \"True\" && \$2 >= 1.5 && \$2 <= 4) }" "$T/idle"' \
	"a silent client is dropped after about 2 s ($(cat "$T/idle"))"
ok 'alive $pidw && W vm1 >/dev/null' "the witness survives all of it"

# --- a table it cannot trust ---
kill "$pidw"
wait_exit "$pidw" 10
echo "vm=x owner=A" >>"$T/w/witness.table"
"$HRD" -f --serve-witness --insecure --control "$T/run/w.sock" --listen "$WA" --state-dir "$T/w" \
	>"$T/err" 2>&1; rc=$?
ok '[ $rc = 1 ] && grep -q "witness.table: line 4 is not a witness table record" "$T/err"' \
	"a damaged table: the witness refuses to start (rc=$rc)"
done_testing
