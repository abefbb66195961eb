#!/bin/sh
# Hostile input to real daemons (issue 8): a start that cannot come up
# fails with the reason; a HELLO asking for more than --max-memory /
# --max-vcpus is refused before anything is allocated; idle connections
# on the replication port (from one address) or the control socket do not
# lock out a start or the CLI; console files are appended to and never
# written through a symlink; the per-epoch log is bounded; stop removes
# the daemon's files for the VM but keeps its console.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only)"
ha_guest
command -v python3 >/dev/null || skip_all "python3 not found"
plan 18

PA=$((20000 + ($$ + 7) % 20000))
PB=$((PA + 1))
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || exit 1
"$HRD" -f $TLS_A --control "$CA" --listen "127.0.0.1:$PA" --state-dir "$T/a/state" \
	--epochs-log-max 4K >>"$T/a.log" 2>&1 &
pida=$!
"$HRD" -f $TLS_B --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" \
	--max-memory 1G --max-vcpus 4 >>"$T/b.log" 2>&1 &
pidb=$!
on_exit "kill -9 $pida $pidb 2>/dev/null"
A() { "$HR" "$@" --control "$CA"; }
wait_for "$T/a.log" "control $CA" 10 && wait_for "$T/b.log" "control $CB" 10
ok '[ $? = 0 ]' "two daemons start"

# --- start waits for the VM to come up ---
# (a guest the backend cannot build: KVM a kernel that is no ELF, mem a
# command line with a key it does not know)
if [ "$HA_GUEST" = kvm ]; then
	head -c 8192 /dev/urandom >"$T/not-elf"
	A start bad --peer "127.0.0.1:$PB" --kernel "$T/not-elf" --memory 64M >"$T/out" 2>"$T/err"
	rc=$? what=not-elf
else
	A start bad --peer "127.0.0.1:$PB" $HA_START --append nokey=1 --memory 64M >"$T/out" 2>"$T/err"
	rc=$? what=nokey
fi
ok '[ $rc = 1 ] && grep -q "did not come up" "$T/err" && grep -q "$what" "$T/err" && ! grep -q started "$T/out"' \
	"start of a guest that cannot be built ($what): exit 1 with the reason (rc=$rc: $(cat "$T/err"))"
ok '! A status bad >/dev/null 2>&1' "... and nothing is left running"

# --- limits a peer cannot exceed (checked on the backup before allocating) ---
# an authenticated peer (A's certificate) asking for too much
HELLO_TLS="a $T/pki/a/host.crt $T/pki/a/host.key $T/pki/a/ca.crt"
[ -n "${HR_TEST_INSECURE:-}" ] && HELLO_TLS=""
"$top_builddir/tests/hello-send" "$PB" many $((64 << 20)) 1000 $HELLO_TLS >"$T/out" 2>&1
ok 'grep -q "refused: .*1000 vCPUs.*--max-vcpus" "$T/out"' "a HELLO with 1000 vCPUs is refused: $(cat "$T/out")"
"$top_builddir/tests/hello-send" "$PB" huge $((1 << 40)) 1 $HELLO_TLS >"$T/out" 2>&1
ok 'grep -q "refused: .*--max-memory" "$T/out"' "a HELLO with 1 TiB is refused: $(cat "$T/out")"
ok 'wait_for "$T/b.log" "huge.*(replica worker ended|start failed)" 10 && ! grep -q "killed by signal" "$T/b.log"' \
	"no backup worker died of a signal"
ok 'grep -q "refusing the primary: 1000 vCPUs" "$T/b.log"' "the backup logs the refusal"
A start wide --peer "127.0.0.1:$PB" $HA_START --memory 64M --vcpus 8 >/dev/null 2>"$T/err"
rc=$?
ok '[ $rc = 1 ] && grep -q "backup refused: 8 vCPUs" "$T/err"' \
	"start --vcpus 8 to a --max-vcpus 4 backup: refused with the reason (rc=$rc: $(cat "$T/err"))"

# --- 20 idle connections from one address do not keep a primary out ---
python3 - "$PB" >"$T/idle.out" 2>&1 <<'PY' &
import socket, sys, time
held = []
for i in range(20):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
    except OSError:
        pass
    held.append(s)
print("holding", flush=True)
time.sleep(12)
PY
pidi=$!
on_exit "kill $pidi 2>/dev/null"
wait_for "$T/idle.out" holding 10
t0=$(date +%s%N)
A start vm1 --peer "127.0.0.1:$PB" $HA_START --memory 64M >/dev/null 2>"$T/err"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
ok '[ $rc = 0 ] && [ $ms -lt 4000 ]' "start with 20 idle connections from 127.0.0.2 open: rc=$rc in $ms ms $(cat "$T/err")"
ok 'grep -q "from that address" "$T/b.log"' "the backup refused the idle connections over the per-address cap"
kill $pidi 2>/dev/null

# --- 130 idle control connections: the CLI still gets through ---
python3 - "$CA" >"$T/cidle.out" 2>&1 <<'PY' &
import socket, sys, time
held = []
for i in range(130):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])
    except OSError:
        pass
    held.append(s)
print("holding", flush=True)
time.sleep(10)
PY
pidc=$!
on_exit "kill $pidc 2>/dev/null"
wait_for "$T/cidle.out" holding 10
A status vm1 >/dev/null 2>"$T/err"
rc=$?
ok '[ $rc = 0 ]' "status with 130 idle control connections open: rc=$rc (141 = SIGPIPE) $(cat "$T/err")"
kill $pidc 2>/dev/null

# --- the per-epoch log is bounded (--epochs-log-max 4K) ---
ok 'wait_true 20 test -s "$T/a/state/vm1.epochs.1"' "vm1.epochs rotated to vm1.epochs.1"
sz=$(stat -c %s "$T/a/state/vm1.epochs")
ok '[ "$sz" -le 4096 ] && [ "$(stat -c %s "$T/a/state/vm1.epochs.1")" -le 4096 ]' "both parts at most 4K (vm1.epochs: $sz)"

# --- stop removes the daemon's files for the VM, not its console ---
A stop vm1 >/dev/null 2>&1
ok '[ ! -e "$T/a/state/vm1.epochs" ] && [ ! -e "$T/a/state/vm1.epochs.1" ] && [ ! -e "$T/a/state/vm1.worker" ] && [ -s "$T/a/state/vm1.console" ]' \
	"stop: vm1.epochs, .epochs.1, .worker gone; vm1.console kept"

# --- console files: appended, never through a symlink ---
printf 'before\n' >"$T/a/state/vm2.console"
A start vm2 --peer "127.0.0.1:$PB" $HA_START --memory 64M >/dev/null 2>&1
ok 'wait_for "$T/a/state/vm2.console" "memwalk|mem: step" 20 && [ "$(head -n 1 "$T/a/state/vm2.console")" = before ]' \
	"an existing console file is appended to, not overwritten"
A stop vm2 >/dev/null 2>&1
printf 'precious\n' >"$T/target"
chmod 644 "$T/target"
ln -s "$T/target" "$T/a/state/vm3.console"
A start vm3 --peer "127.0.0.1:$PB" $HA_START --memory 64M >/dev/null 2>"$T/err"
rc=$?
ok '[ $rc = 1 ] && grep -q "vm3.console" "$T/err" && grep -q "symbolic link" "$T/err"' \
	"a console path that is a symlink: start fails naming it (rc=$rc: $(cat "$T/err"))"
ok '[ "$(cat "$T/target")" = precious ]' "... and the file it points to is untouched"
ok 'kill -0 $pida && kill -0 $pidb' "both daemons survived"
done_testing
