#!/bin/sh
# The witness's link is TLS 1.3 like every peer link: `hareplicated
# --serve-witness` with certificates (CA mode), a pinned certificate and a
# pre-shared key, asked by `hareplicate witness` as a host's daemon asks it.
# Refused, logged with the address and why, and leaving the table as it was:
# a client with another CA's certificate, one that speaks plain TCP (the
# CLI's --insecure and a raw request line), one that says nothing, a node
# whose request names another node, a pin that does not match, a wrong PSK.
# A TLS client does not fall back to plain TCP against an --insecure witness.
# Needs no root and no /dev/kvm.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
command -v python3 >/dev/null || skip_all "python3 not found"
plan 21

PW=$((30000 + $$ % 20000))
WA="127.0.0.1:$PW"
TLS_W=$(tls_opts W) && TLS_X=$(tls_opts X) && TLS_Y=$(tls_opts Y) ||
	{ echo "Bail out! cannot make certificates"; exit 1; }
# a second CA, and a host certificate from it named like a real node
mkdir -p "$T/evil/ca" "$T/evil/X"
"$HR" cert ca "$T/evil/ca" >/dev/null && "$HR" cert host "$T/evil/X" --name X --ca "$T/evil/ca" >/dev/null ||
	{ echo "Bail out! cannot make the second CA"; exit 1; }
# (it trusts the real CA, so the witness is the one that must refuse)
EVIL="--node X --tls-cert $T/evil/X/host.crt --tls-key $T/evil/X/host.key --tls-ca $T/pki/X/ca.crt"

# start_witness LOG OPTIONS...: a witness on $WA; waits until it listens
start_witness() {
	_log=$1
	shift
	"$HRD" -f --serve-witness "$@" --control "$T/run/w.sock" --listen "$WA" --state-dir "$T/w" \
		>"$_log" 2>&1 &
	pidw=$!
	on_exit "kill -9 $pidw 2>/dev/null"
	wait_for "$_log" "witness on $WA" 10
}
stop_witness() { kill "$pidw" 2>/dev/null; wait_exit "$pidw" 10; }
# Wx OPTS ARGS...: the CLI with the link options OPTS (word-split)
Wx() { _o=$1; shift; "$HR" witness "$WA" $_o --timeout 3000 "$@"; }
records() { Wx "$TLS_X" | wc -l; }
# refused_in LOG TEXT: the witness logged a refusal of a 127.0.0.1 client with TEXT
refused_in() { wait_for "$1" "TLS: refused client 127\.0\.0\.1:[0-9]*: .*$2" 5; }

# --- CA mode ---
ok 'start_witness "$T/w.log" $TLS_W' "a TLS witness (CA mode) starts"
ok 'Wx "$TLS_X" vm1 --claim X --lease-ms 5000 | grep -q "^vm1 owner=X .*holder=X .*granted=1"' \
	"X, authenticated as X, claims vm1: granted"
ok 'Wx "$TLS_Y" | grep -q "^vm1 owner=X"' "Y (another node of the CA) lists the table"

Wx "$TLS_Y" vm1 --claim X >"$T/out" 2>"$T/err"; rc=$?
ok '[ $rc = 1 ] && grep -q "refused the request: node is not the one this link authenticated as" "$T/err"' \
	"Y's request naming X: refused (rc=$rc)"
ok 'grep -q "peer 127\.0\.0\.1:[0-9]* refused: it authenticated as .Y. but claims to be node .X." "$T/w.log"' \
	"the witness logs who Y is and whom it claimed to be"
Wx "$TLS_Y" vm2 --claim Y >/dev/null; rc=$?
ok '[ $rc = 0 ] && [ "$(records)" = 2 ]' "Y claims vm2 as itself: granted (rc=$rc)"

Wx "$EVIL" vm3 --claim X >/dev/null 2>"$T/err"; rc=$?
ok '[ $rc = 69 ]' "a certificate of another CA named X: the CLI cannot ask (rc=$rc)"
ok 'refused_in "$T/w.log" "client certificate not signed by the configured CA \\(CN=X\\)"' \
	"the witness logs the refusal with the address and why"
Wx "--insecure" vm3 --claim X >/dev/null 2>"$T/err"; rc=$?
ok '[ $rc = 69 ] && refused_in "$T/w.log" "peer speaks plain TCP"' \
	"a plain-TCP client (--insecure CLI): refused and logged (rc=$rc)"
python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"hrw=1 op=claim vm=vm4 node=X lease_ms=60000\n")
try:
    print(len(s.recv(100)))
except OSError:
    print(0)
' "$PW" >"$T/raw"
ok '[ "$(cat "$T/raw")" = 0 ]' "a raw request line gets no answer"
t0=$(date +%s%N)
python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.recv(1)
' "$PW"
t1=$(date +%s%N)
ok 'refused_in "$T/w.log" "handshake timeout" && [ $(( (t1 - t0) / 1000000 )) -lt 5000 ]' \
	"a client that says nothing: dropped after $(( (t1 - t0) / 1000000 )) ms, logged"
ok '[ "$(records)" = 2 ] && ! Wx "$TLS_X" | grep -q "vm3\|vm4"' \
	"no refused client changed the table (2 records, no vm3/vm4)"
ok 'kill -0 $pidw' "the witness is still up"
stop_witness

# --- pinned ---
fp_x=$("$HR" cert fingerprint "$T/pki/X/host.crt")
fp_w=$("$HR" cert fingerprint "$T/pki/W/host.crt")
PIN_W="--node W --tls-cert $T/pki/W/host.crt --tls-key $T/pki/W/host.key --tls-pin $fp_x"
PIN_X="--node X --tls-cert $T/pki/X/host.crt --tls-key $T/pki/X/host.key --tls-pin $fp_w"
PIN_Y="--node Y --tls-cert $T/pki/Y/host.crt --tls-key $T/pki/Y/host.key --tls-pin $fp_w"
ok 'start_witness "$T/w-pin.log" $PIN_W' "a witness that pins X's certificate"
ok 'Wx "$PIN_X" vm1 | grep -q "^vm1 owner=X"' "X (pinned) asks: answered, the table survived the restart"
Wx "$PIN_Y" vm1 >/dev/null 2>&1; rc=$?
ok '[ $rc = 69 ] && refused_in "$T/w-pin.log" "fingerprint not pinned"' \
	"Y (not pinned): refused and logged (rc=$rc)"
stop_witness

# --- PSK ---
"$HR" cert psk "$T/c.psk" >/dev/null && "$HR" cert psk "$T/other.psk" >/dev/null
ok 'start_witness "$T/w-psk.log" --node W --tls-psk "$T/c.psk"' "a witness with a pre-shared key"
ok 'Wx "--node X --tls-psk $T/c.psk" vm1 --claim X --lease-ms 5000 | grep -q "granted=1"' \
	"X with the key claims vm1 as X: granted"
Wx "--node Y --tls-psk $T/c.psk" vm1 --claim X >/dev/null 2>&1; rc=$?
ok '[ $rc = 1 ]' "Y with the key but claiming as X: refused (rc=$rc)"
Wx "--node X --tls-psk $T/other.psk" vm1 >/dev/null 2>&1; rc=$?
ok '[ $rc = 69 ] && refused_in "$T/w-psk.log" "PSK"' "another key: refused and logged (rc=$rc)"
stop_witness

# --- no silent downgrade ---
start_witness "$T/w-plain.log" --insecure
Wx "$TLS_X" vm1 >/dev/null 2>"$T/err"; rc=$?
ok '[ $rc = 69 ]' "a TLS client against an --insecure witness does not fall back to plain TCP (rc=$rc)"
stop_witness
done_testing
