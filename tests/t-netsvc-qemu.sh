#!/bin/sh
# netsvc (tests/guests/netsvc.elf) under QEMU on a TAP device in a network
# namespace: the guest's virtio-mmio driver and IP stack against the host
# kernel's.  ICMP echo and ARP, the TCP running-sum service (netprobe, many
# connections at once, the connection limit, pipelining, bad lines), the
# UDP counter service, RST and ICMP port unreachable for closed ports, and
# TCP edge cases from a raw-socket peer (tests/netsvc-rawtcp.py: bad
# checksum, out of order, retransmission with backoff, duplicates, FIN,
# shut window).  Last, the VM moves: stopped, its state saved to a file and
# restored in a new QEMU on another TAP of the same bridge, under a running
# netprobe, whose connection and running sum must survive (the state lives
# in guest memory only).
# QEMU's microvm machine appends virtio_mmio.device= to the command line
# (acpi=off; with ACPI it describes the devices there instead), and QEMU 7.2
# makes virtio-mmio legacy unless told otherwise (see tests/guests/README.md).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
trap 'exit 129' HUP # lib.sh's EXIT trap cleans up; sh runs it on exit, not on a signal
trap 'exit 130' INT
trap 'exit 143' TERM
need_kvm
[ -n "$QEMU" ] && [ -x "$QEMU" ] || QEMU=$(command -v qemu-system-x86_64)
[ -n "$QEMU" ] || skip_all "qemu-system-x86_64 not installed"
[ "$(id -u)" = 0 ] || skip_all "needs root for a network namespace and a TAP device"
command -v ip >/dev/null || skip_all "ip (iproute2) not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"
PROBE="$top_builddir/tests/netprobe"
RAWTCP="$top_srcdir/tests/netsvc-rawtcp.py"
NS="hr-netsvc-$$"
MAC=52:54:00:4e:53:01
G=10.0.0.2

ip netns add "$NS" 2>/dev/null || skip_all "cannot create a network namespace"
on_exit "ip netns del $NS 2>/dev/null"
in_ns() { ip netns exec "$NS" "$@"; } # not for `&`: $! would be a subshell
in_ns ip link set lo up
# br0 = 10.0.0.1/24 with tap0 (the guest) and tap1 (where it moves at the end)
in_ns ip tuntap add dev tap0 mode tap 2>/dev/null || skip_all "cannot create a TAP device"
in_ns ip tuntap add dev tap1 mode tap
in_ns ip link add br0 type bridge 2>/dev/null || skip_all "cannot create a bridge"
in_ns ip link set tap0 master br0
in_ns ip link set tap1 master br0
in_ns ip addr add 10.0.0.1/24 dev br0
for dev in br0 tap0 tap1; do in_ns ip link set $dev up; done
plan 24

# qemu N TAP [ARGS...]: QEMU number N on TAP in the background, console in
# $T/console.N, HMP monitor on $T/mon.N; sets qpid.
qemu() {
	qn=$1 qtap=$2
	shift 2
	ip netns exec "$NS" "$QEMU" -M microvm,acpi=off -accel kvm -m 64 -smp 1 -display none \
		-nodefaults -no-reboot -serial "file:$T/console.$qn" \
		-monitor "unix:$T/mon.$qn,server,nowait" -global virtio-mmio.force-legacy=false \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-netdev "tap,id=n0,ifname=$qtap,script=no,downscript=no" \
		-device "virtio-net-device,netdev=n0,mac=$MAC" \
		-kernel "$GUESTS/netsvc.elf" -append "ip=$G/24" "$@" >"$T/qemu.$qn.log" 2>&1 &
	qpid=$!
	on_exit "kill -9 $qpid 2>/dev/null; wait $qpid 2>/dev/null"
}
qemu 1 tap0
qpid1=$qpid

# The ready line, or QEMU gone, within 60 s (ring 0 is emulated under PVM).
end=$(($(date +%s) + 60))
while ! grep -q '^netsvc: ready ' "$T/console.1" 2>/dev/null && kill -0 $qpid1 2>/dev/null &&
	[ "$(date +%s)" -lt "$end" ]; do
	sleep 0.05
done
ready=$(grep '^netsvc: ready ' "$T/console.1")
ok '[ "$ready" = "netsvc: ready mac=$MAC ip=$G/24 gw=none tcp=7000 udp=7001 link=up" ]' \
	"the guest is ready with the device's MAC and the command line's address"
if [ -z "$ready" ]; then
	sed 's/^/# console: /' "$T/console.1"
	sed 's/^/# qemu: /' "$T/qemu.1.log"
	exit 1
fi
grep -E '^netsvc: (virtio|tsc|WARNING)' "$T/console.1" | sed 's/^/# /'

probe() { # probe NAME ARGS...: netprobe in the namespace, output in $T/NAME
	pname=$1
	shift
	in_ns "$PROBE" "$@" >"$T/$pname" 2>&1
}
val() { sed -n "s/^$2=//p" "$T/$1" | tail -n 1; }
show() { sed "s/^/# $1: /" "$T/$1"; }

probe icmp icmp $G --count 20 --timeout-ms 2000
pings=true
if command -v ping >/dev/null; then
	in_ns ping -c 3 -i 0.2 -W 2 $G >"$T/ping" 2>&1 || pings=false
	$pings || show ping
fi
ok '[ "$(val icmp result)" = ok ] && [ "$(val icmp answered)" = 20 ] && $pings' \
	"ICMP echo: 20 of 20 answered (netprobe icmp, and ping when installed)"
[ "$(val icmp result)" = ok ] || show icmp
ok 'in_ns ip neigh show $G dev br0 | grep -qi "lladdr $MAC"' \
	"ARP: the host resolved $G to the guest's MAC"

probe tcp tcp $G 7000 --count 300 --timeout-ms 5000
ok '[ "$(val tcp result)" = ok ] && [ "$(val tcp answered)" = 300 ] && [ "$(val tcp close)" = clean ]' \
	"TCP: 300 numbers, every running sum right, FIN both ways"
[ "$(val tcp result)" = ok ] || show tcp
diag "tcp rtt p50 $(val tcp rtt_p50_us) us, p99 $(val tcp rtt_p99_us) us, max gap $(val tcp max_gap_ms) ms"

probe udp udp $G 7001 --count 200 --timeout-ms 2000
ok '[ "$(val udp result)" = ok ] && [ "$(val udp answered)" = 200 ]' \
	"UDP: 200 requests, each echoed behind a rising counter"
[ "$(val udp result)" = ok ] || show udp
diag "udp rtt p50 $(val udp rtt_p50_us) us, p99 $(val udp rtt_p99_us) us"

for i in 1 2 3 4 5 6 7 8; do
	ip netns exec "$NS" "$PROBE" tcp $G 7000 --count 100 --interval-ms 2 --timeout-ms 5000 \
		>"$T/par.$i" 2>&1 &
	eval "ppid$i=\$!"
done
nok=0
for i in 1 2 3 4 5 6 7 8; do
	eval "wait_exit \$ppid$i 60"
	[ "$rc" = 0 ] && [ "$(val par.$i result)" = ok ] && nok=$((nok + 1))
	[ "$(val par.$i result)" = ok ] || show par.$i
done
ok '[ $nok = 8 ]' "TCP: 8 connections at once, 100 numbers each ($nok of 8 ok)"

probe closed_tcp tcp $G 7999 --count 1 --timeout-ms 3000
ok '[ "$(val closed_tcp reason)" = refused ]' "TCP to a closed port: refused (RST)"
[ "$(val closed_tcp reason)" = refused ] || show closed_tcp
probe closed_udp udp $G 7998 --count 2 --timeout-ms 1000
ok '[ "$(val closed_udp reason)" = refused ]' "UDP to a closed port: refused (ICMP port unreachable)"
[ "$(val closed_udp reason)" = refused ] || show closed_udp

cat >"$T/tcp.py" <<'EOF'
import socket, sys, threading
G, what = sys.argv[1], sys.argv[2]
def conn():
    return socket.create_connection((G, 7000), timeout=5)
def ask(c, line):
    c.sendall(line)
    buf = b""
    while not buf.endswith(b"\n"):
        d = c.recv(4096)
        if not d:
            raise EOFError("eof")
        buf += d
    return buf
if what == "limit":  # 16 connections; the 17th is refused; closing frees them
    cs = [conn() for _ in range(16)]
    for i, c in enumerate(cs):
        assert ask(c, b"%d\n" % i) == b"seq=1 sum=%d\n" % i, i
    try:
        conn()
        sys.exit("the 17th connection was accepted")
    except ConnectionRefusedError:
        pass
    for c in cs:
        c.shutdown(socket.SHUT_WR)
        assert c.recv(100) == b"", "no FIN"
        c.close()
    c = conn()
    assert ask(c, b"7\n") == b"seq=1 sum=7\n"
elif what == "pipeline":  # 20000 lines in one go, answers read meanwhile
    n = 20000
    c = conn()
    got = []
    def reader():
        while True:
            d = c.recv(65536)
            if not d:
                return
            got.append(d)
    t = threading.Thread(target=reader)
    t.start()
    c.sendall(b"".join(b"%d\n" % i for i in range(1, n + 1)))
    c.shutdown(socket.SHUT_WR)
    t.join(30)
    want = b"".join(b"seq=%d sum=%d\n" % (i, i * (i + 1) // 2) for i in range(1, n + 1))
    assert b"".join(got) == want, "answers differ (%d bytes, want %d)" % (len(b"".join(got)), len(want))
elif what == "lines":  # what counts as a number
    c = conn()
    for line, want in [(b"abc\n", b"seq=1 error=bad-number\n"), (b"+4\n", b"seq=2 sum=4\n"),
                       (b"-10\r\n", b"seq=3 sum=-6\n"), (b"\n", b"seq=4 error=bad-number\n"),
                       (b"99999999999999999999\n", b"seq=5 error=bad-number\n"),
                       (b"9223372036854775807\n", b"seq=6 sum=9223372036854775801\n"),
                       (b"1 2\n", b"seq=7 error=bad-number\n"), (b"6\n", b"seq=8 sum=9223372036854775807\n"),
                       (b"1\n", b"seq=9 sum=-9223372036854775808\n")]:  # wraps like int64_t
        got = ask(c, line)
        assert got == want, "%r -> %r, want %r" % (line, got, want)
print("ok")
EOF
for what in limit pipeline lines; do
	in_ns timeout 60 python3 "$T/tcp.py" $G $what >"$T/py.$what" 2>&1
	eval "py_$what=\$?"
done
ok '[ $py_limit = 0 ]' "TCP: 16 connections at once, the 17th refused, closing frees the slots"
[ $py_limit = 0 ] || show py.limit
ok '[ $py_pipeline = 0 ]' "TCP: 20000 lines pipelined, all answered in order"
[ $py_pipeline = 0 ] || show py.pipeline
ok '[ $py_lines = 0 ]' "TCP: malformed and edge-case numbers"
[ $py_lines = 0 ] || show py.lines

in_ns timeout 60 python3 "$RAWTCP" tap0 $G $MAC 7000 >"$T/raw" 2>&1
nraw=0
while IFS= read -r line; do
	case $line in
	"ok "*) ok true "raw TCP peer: ${line#ok }" ;;
	"not ok "*) ok false "raw TCP peer: ${line#not ok }" ;;
	*) diag "raw: $line"; continue ;;
	esac
	nraw=$((nraw + 1))
done <"$T/raw"
while [ $nraw -lt 11 ]; do
	ok false "raw TCP peer: check $((nraw + 1)) did not run"
	nraw=$((nraw + 1))
done

# hmp N COMMAND: one HMP command to QEMU N; prints its reply (bounded).
cat >"$T/hmp.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
end = time.time() + 30
while True:
    try:
        s.connect(sys.argv[1])
        break
    except OSError:
        if time.time() > end:
            sys.exit("no monitor")
        time.sleep(0.05)
s.settimeout(30)
def prompt():
    buf = b""
    while not buf.endswith(b"(qemu) "):
        d = s.recv(4096)
        if not d:
            break
        buf += d
    return buf.decode(errors="replace")
prompt()
s.sendall(sys.argv[2].encode() + b"\n")
print(prompt())
EOF
hmp() { timeout 60 python3 "$T/hmp.py" "$T/mon.$1" "$2"; }

# The move, under a netprobe that sends a number every 10 ms.  While the VM
# is stopped the client's TCP retransmits; the restored guest answers.
ip netns exec "$NS" "$PROBE" tcp $G 7000 --count 300 --interval-ms 10 --timeout-ms 30000 \
	>"$T/move" 2>&1 &
mpid=$!
# Move once the connection has some answers (100 bytes: about 8).
wait_true 10 sh -c "ip netns exec $NS ss -Htni state established dst $G:7000 |
	grep -q 'bytes_received:[1-9][0-9][0-9]'"
hmp 1 stop >/dev/null
hmp 1 "migrate \"exec:cat > $T/state\"" >/dev/null
migrated=$(hmp 1 "info migrate" | grep -c "^Migration status: completed")
kill -9 $qpid1
wait $qpid1 2>/dev/null
qemu 2 tap1 -incoming "exec:cat $T/state"
qpid2=$qpid
hmp 2 cont >/dev/null
wait_exit $mpid 60
ok '[ "$migrated" = 1 ] && [ "$rc" = 0 ] && [ "$(val move result)" = ok ] &&
	[ "$(val move answered)" = 300 ] && [ "$(val move close)" = clean ]' \
	"TCP: a connection and its running sum survive moving the VM to another QEMU and TAP"
[ "$(val move result)" = ok ] || show move
diag "move: the longest gap was $(val move max_gap_ms) ms, after answer $(val move max_gap_after)"

ok '! cat "$T"/console.* | grep -qE "FAIL|exception" && kill -0 $qpid2' \
	"the guest is still running, no FAIL or exception on its console"
cat "$T"/console.* | grep -E "FAIL|exception" | sed 's/^/# console: /'
done_testing
