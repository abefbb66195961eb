#!/bin/bash
# t-ha-loss.sh - `make check-ha`: a protected VM whose replication link loses
# 20% of its packets for 60 s (nftables `numgen random`, both ways, on the
# replication port only).  Hosts A and B are network namespaces joined by a
# veth pair; a console collector in this namespace, reached over links of
# their own that lose nothing, timestamps every new byte either host
# releases.  Whatever happens (the backup may take over, re-protection may
# fail and back off), the outside must see one console stream with no gap
# and no contradiction, one speaker at a time, and the longest output
# silence is reported and bounded.  Figures: docs/design.md.
. "$(dirname "$0")/../lib.sh"
[ -n "${HR_TEST_KEEP:-}" ] && on_exit "cp -r $T $HR_TEST_KEEP"
[ "$(id -u)" = 0 ] || skip_all "needs root (namespaces, nftables)"
command -v nft >/dev/null || skip_all "nft not installed"
LOSS_S=${HR_HA_LOSS_S:-60}
LOSS_PCT=${HR_HA_LOSS_PCT:-20}
N=hrl$$
A=$N-a
B=$N-b
PORT=7788
COLLECT_PORT=7000
plan 6

cleanup_net() {
	ip netns del "$A" 2>/dev/null
	ip netns del "$B" 2>/dev/null
	ip link del "${N}ca" 2>/dev/null
	ip link del "${N}cb" 2>/dev/null
}
on_exit cleanup_net
ip netns add "$A" && ip netns add "$B" || { echo "Bail out! ip netns add"; exit 1; }
ip link add "${N}ab" type veth peer name "${N}ba"
ip link set "${N}ab" netns "$A"
ip link set "${N}ba" netns "$B"
ip -n "$A" addr add 10.215.1.1/24 dev "${N}ab"
ip -n "$B" addr add 10.215.1.2/24 dev "${N}ba"
# the collector's links (no loss): 10.215.2.0/24 to A, 10.215.3.0/24 to B
ip link add "${N}ca" type veth peer name "${N}xa"
ip link set "${N}xa" netns "$A"
ip addr add 10.215.2.254/24 dev "${N}ca"
ip -n "$A" addr add 10.215.2.1/24 dev "${N}xa"
ip link add "${N}cb" type veth peer name "${N}xb"
ip link set "${N}xb" netns "$B"
ip addr add 10.215.3.254/24 dev "${N}cb"
ip -n "$B" addr add 10.215.3.1/24 dev "${N}xb"
for ns in "$A" "$B"; do
	ip -n "$ns" link set lo up
	for l in $(ip -n "$ns" -o link show | sed -n 's/^[0-9]*: \([^@:]*\).*/\1/p' | grep -v '^lo$'); do
		ip -n "$ns" link set "$l" up
	done
done
ip link set "${N}ca" up
ip link set "${N}cb" up

# the collector: console frames (u64 offset, u32 len, bytes) from either host
python3 - "$COLLECT_PORT" "$T/collect.json" "$T/collect.stop" <<'PY' &
import json, os, select, socket, struct, sys, time
port, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port)); srv.listen(8); srv.setblocking(False)
conns, data, arrivals, conflicts, gaps = {}, bytearray(), [], 0, 0
speakers = {}
while not os.path.exists(stop):
    r, _, _ = select.select([srv] + list(conns), [], [], 0.05)
    for s in r:
        if s is srv:
            c, a = srv.accept(); conns[c] = (bytearray(), a[0]); continue
        try:
            b = s.recv(1 << 16)
        except OSError:
            b = b""
        if not b:
            del conns[s]; s.close(); continue
        buf, peer = conns[s]
        buf += b
        while len(buf) >= 12:
            off, n = struct.unpack("<QI", buf[:12])
            if len(buf) < 12 + n:
                break
            chunk = bytes(buf[12:12 + n]); del buf[:12 + n]
            if off > len(data):
                gaps += 1; continue
            over = min(len(data) - off, n)
            if data[off:off + over] != chunk[:over]:
                conflicts += 1
            if n > over:
                data += chunk[over:]
                now = time.monotonic()
                arrivals.append(now)
                speakers[peer] = now
json.dump({"bytes": len(data), "gaps": gaps, "conflicts": conflicts,
           "arrivals": arrivals, "text": data.decode(errors="replace")}, open(out, "w"))
PY
cpid=$!
on_exit "touch $T/collect.stop; wait $cpid 2>/dev/null"

TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || exit 1
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
# shellcheck disable=SC2086
ip netns exec "$A" "$HRD" -f $TLS_A --control "$CA" --listen "10.215.1.1:$PORT" \
	--state-dir "$T/a/state" --console-default "tcp:10.215.2.254:$COLLECT_PORT" >>"$T/a.log" 2>&1 &
pida=$!
# shellcheck disable=SC2086
ip netns exec "$B" "$HRD" -f $TLS_B --control "$CB" --listen "10.215.1.2:$PORT" \
	--state-dir "$T/b/state" --console-default "tcp:10.215.3.254:$COLLECT_PORT" >>"$T/b.log" 2>&1 &
pidb=$!
on_exit "kill -9 $pida $pidb 2>/dev/null; pkill -9 -f '$T/' 2>/dev/null"
wait_true 10 "$HR" status --control "$CA" && wait_true 10 "$HR" status --control "$CB" ||
	{ echo "Bail out! daemons did not answer"; exit 1; }
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	GUEST=(--kernel "$GUESTS/memwalk.elf" --append "rate=4000 wss=64M interval_ms=20")
else
	GUEST=(--backend mem --kernel /dev/null --append "steps_per_s=100 writes=32")
	diag "no usable /dev/kvm: the guest is the mem backend's software guest"
fi
"$HR" start vm1 --control "$CA" --peer "10.215.1.2:$PORT" --epoch 25ms --memory 128M \
	--console "tcp:10.215.2.254:$COLLECT_PORT" "${GUEST[@]}" >/dev/null 2>"$T/start.err"
ok 'wait_field vm1 state protected "$CA" 60' "vm1 protected over the veth link"

# 20% loss on the replication port, both ways, in both hosts
for ns in "$A" "$B"; do
	ip netns exec "$ns" nft -f - <<EOF
table inet hrloss {
	chain in { type filter hook input priority 0; tcp dport $PORT numgen random mod 100 < $LOSS_PCT drop; tcp sport $PORT numgen random mod 100 < $LOSS_PCT drop; }
}
EOF
done
t_loss=$(python3 -c 'import time; print(time.monotonic())')
diag "${LOSS_PCT}% loss on port $PORT for ${LOSS_S} s"
states=""
for _ in $(seq "$LOSS_S"); do
	sleep 1 # sampling the states once a second over the fault's length
	states="$states $(field vm1 state "$CA" 2>/dev/null || echo -)/$(field vm1 state "$CB" 2>/dev/null || echo -)"
done
for ns in "$A" "$B"; do ip netns exec "$ns" nft delete table inet hrloss; done
t_end=$(python3 -c 'import time; print(time.monotonic())')
diag "states A/B each second: $states"
# after the loss: someone is protected again, the stream goes on
protected_again() { [ "$(field vm1 state "$CA")" = protected ] || [ "$(field vm1 state "$CB")" = protected ]; }
# re-protection backs off (at most 30 s between attempts) after failed syncs
ok 'wait_true 90 protected_again' \
	"after the loss a protected pair again (A $(field vm1 state "$CA"), B $(field vm1 state "$CB"))"
sleep 2 # two more seconds of output to show the stream goes on
touch "$T/collect.stop"
wait "$cpid"
read -r bytes gaps conflicts silence_ms lines <<<"$(python3 - "$T/collect.json" "$t_loss" "$t_end" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1])); t0, t1 = float(sys.argv[2]), float(sys.argv[3])
a = [t for t in d["arrivals"] if t0 - 1 <= t <= t1 + 1]
longest = max((b - x for x, b in zip(a, a[1:])), default=t1 - t0)
seqs = [int(m) for m in re.findall(r"(?:step|seq)=(\d+)", d["text"])]
bad = sum(1 for x, y in zip(seqs, seqs[1:]) if y != x + 1)
print(d["bytes"], d["gaps"], d["conflicts"] + bad, int(longest * 1000), len(seqs))
PY
)"
ok '[ "$gaps" = 0 ] && [ "$conflicts" = 0 ] && [ "$lines" -gt 100 ]' \
	"the outside saw one stream: $lines lines, $bytes bytes, $gaps gaps, $conflicts contradictions or skips"
promotions=$(grep -c '+primary-lost' "$T/b.log")
reprot=$(grep -c '+reprotect-start' "$T/a.log" "$T/b.log" | awk -F: '{s+=$2} END {print s}')
diag "outcome: $promotions failovers, $reprot re-protection attempts, longest output silence ${silence_ms} ms"
ok '[ "$silence_ms" -lt 15000 ]' "the longest output silence during the loss: $silence_ms ms (bounded: 15 s; 57-63 s before re-protection backed off and kept a speaking guest speaking)"
ok '! grep -q "two hosts speak" "$T/a.log" "$T/b.log"' "never two speakers"
ok '[ -n "$(field vm1 pid "$CA")$(field vm1 pid "$CB")" ]' "the VM still runs"
"$HR" stop vm1 --control "$CA" >/dev/null 2>&1
"$HR" stop vm1 --control "$CB" >/dev/null 2>&1
done_testing
