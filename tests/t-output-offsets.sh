#!/bin/sh
# Output offsets, checked from outside: a guest that prints several KiB of
# console output per epoch (memwalk interval_ms=1, 200 ms epochs: ~200 lines
# of ~70 bytes each per epoch; without KVM the mem guest at the same pace,
# its lines padded to 70 bytes) protected by two daemons, with the released
# output going once to a file sink and once to a TCP sink.  Every byte must
# reach the outside exactly once at its own offset: the file holds
# consecutive numbered lines, the TCP receiver sees no gap and no offset
# with two contents, and both agree with each other.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only)"
ha_guest
command -v python3 >/dev/null || skip_all "python3 not found"
plan 8

PA=$((20000 + ($$ * 7) % 20000))
PB=$((PA + 1))
PT=$((PA + 2))
A() { "$HR" "$@" --control "$CA"; }

# The outside world on TCP: frames u64 offset LE | u32 len LE | bytes.  It
# keeps the bytes by offset and counts gaps (data beyond what it has) and
# conflicts (an offset seen again with other bytes); the stream goes to a
# file, the counts to a second file, rewritten on every frame.
python3 - "$PT" "$T/tcp.out" "$T/tcp.counts" <<'EOF' &
import socket, struct, sys
port, out, counts = int(sys.argv[1]), sys.argv[2], sys.argv[3]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(4)
srv.settimeout(120)
data = bytearray()
gaps = conflicts = frames = 0
try:
    while True:
        c, _ = srv.accept()
        c.settimeout(120)
        buf = b""
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            buf += b
            while len(buf) >= 12:
                off, n = struct.unpack("<QI", buf[:12])
                if len(buf) < 12 + n:
                    break
                p, buf = buf[12:12 + n], buf[12 + n:]
                frames += 1
                if off > len(data):
                    gaps += 1
                    continue
                overlap = min(len(data) - off, n)
                if data[off:off + overlap] != p[:overlap]:
                    conflicts += 1
                data += p[overlap:]
                with open(out, "wb") as f:
                    f.write(data)
                with open(counts, "w") as f:
                    f.write("%d %d %d\n" % (gaps, conflicts, frames))
except socket.timeout:
    pass
EOF
pidt=$!
on_exit "kill -9 $pidt 2>/dev/null"

two_daemons 5000
ok 'wait_for "$T/a.log" "control $CA" 10 && wait_for "$T/b.log" "control $CB" 10' "two daemons start"

# lines LOG: check that every "memwalk: seq=N" (or "mem: step=N") line
# follows N-1, errors=0;
# prints "LINES FIRST LAST BAD"
lines() {
	python3 - "$1" <<'EOF'
import re, sys
prev = first = None
n = bad = 0
for line in open(sys.argv[1], "rb").read().decode("ascii", "replace").split("\n")[:-1]:
    m = re.match(r"memwalk: seq=(\d+) .*errors=(\d+)|mem: step=(\d+)\.*$", line)
    if not m:
        continue
    s = int(m.group(1) or m.group(3))
    if prev is not None and s != prev + 1:
        bad += 1
    if m.group(2) not in ("0", None):
        bad += 1
    first = s if first is None else first
    prev = s
    n += 1
print(n, first, prev, bad)
EOF
}

# one VM per sink, one after the other (the same daemons)
app=$(ha_append "rate=2000 wss=4M interval_ms=1")
[ "$HA_GUEST" = kvm ] || app="$app line_bytes=70"
for sink in file tcp; do
	if [ $sink = file ]; then spec="file:$T/console.file"; out="$T/console.file"; else
		spec="tcp:127.0.0.1:$PT"; out="$T/tcp.out"; fi
	A start v$sink --peer "127.0.0.1:$PB" $HA_START --memory 64M \
		--epoch 200ms --console "$spec" \
		--append "$app" >/dev/null 2>"$T/err"
	# 15 epochs of 200 ms with ~14 KB each
	end=$(($(date +%s) + 30))
	while [ "$(date +%s)" -lt "$end" ]; do
		[ -f "$out" ] && [ "$(stat -c %s "$out")" -gt 200000 ] && break
		sleep 0.2
	done
	A stop v$sink >/dev/null 2>&1
	counts=$(lines "$out")
	nl=${counts%% *}; counts=${counts#* }
	first=${counts%% *}; counts=${counts#* }
	last=${counts%% *}; bad=${counts#* }
	diag "$sink sink: $(stat -c %s "$out") bytes, $nl lines seq $first..$last, $bad out of order"
	ok '[ "$(stat -c %s "$out")" -gt 200000 ]' "$sink sink: more than 200 KB released (several KiB per epoch)"
	ok '[ "$nl" -gt 1000 ] && [ "$first" = 1 ] && [ "$bad" = 0 ]' \
		"$sink sink: from seq=1 on, every line follows the one before it, errors=0 ($nl lines, $bad bad)"
	if [ $sink = file ]; then
		ok '! tr -d "\n[:print:]" <"$out" | grep -q .' "file sink: no hole (NUL bytes) and no foreign byte"
	else
		read -r g c f <"$T/tcp.counts"
		ok '[ "$g" = 0 ] && [ "$c" = 0 ]' "tcp sink: no gap and no offset with two contents ($f frames, $g gaps, $c conflicts)"
	fi
done
ok 'alive() { kill -0 "$1" 2>/dev/null; }; alive $pida && alive $pidb' "both daemons still run"
done_testing
