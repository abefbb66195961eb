# lib.sh - TAP helpers for the shell tests.  Source it; then plan N, ok COND MSG.
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
# Debian's python3 first: a pyenv shim in PATH costs seconds a call on a
# loaded machine, longer than the waits the tests poll within
[ -x /usr/bin/python3 ] && PATH=/usr/bin:$PATH
HR="$top_builddir/hareplicate"
HRD="$top_builddir/hareplicated"
GUESTS="$top_builddir/tests/guests"
T=$(mktemp -d "${TMPDIR:-/tmp}/hr-test.XXXXXX")
_n=0
_failed=0
_cleanup_cmds=""
cleanup() { eval "$_cleanup_cmds"; rm -rf "$T"; }
trap cleanup EXIT
on_exit() { _cleanup_cmds="$_cleanup_cmds
$*"; }
plan() { echo "1..$1"; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
ok() {
	_n=$((_n + 1))
	if eval "$1"; then echo "ok $_n - $2"; else echo "not ok $_n - $2"; _failed=$((_failed + 1)); fi
}
diag() { echo "# $*"; }
done_testing() { [ "$_failed" -eq 0 ]; }
# wait_for FILE REGEX SECONDS: poll (bounded) until a line of FILE matches.
wait_for() {
	_end=$(( $(date +%s%N) / 1000000 + $3 * 1000 ))
	while [ "$(( $(date +%s%N) / 1000000 ))" -lt "$_end" ]; do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
# is_pid X: X is a positive integer > 1.  `kill 0` signals our whole process
# group (all of make check), `kill -1` every process, and an empty or "None"
# pid read from status output means the process never started.
is_pid() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	[ "$1" -gt 1 ]
}
# kill_pid SIGNAL PID: kill a pid read from status output, refusing (and
# failing, so that the test point fails) anything but a real pid.
kill_pid() {
	is_pid "$2" || { diag "refusing to kill pid '$2'"; return 1; }
	kill "$1" "$2"
}
# wait_exit PID SECONDS: wait (bounded) for a background child; sets $rc.
wait_exit() {
	is_pid "$1" || { diag "wait_exit: not a pid: '$1'"; rc=nopid; return 1; }
	_end=$(( $(date +%s) + $2 ))
	while kill -0 "$1" 2>/dev/null && [ "$(date +%s)" -lt "$_end" ]; do sleep 0.05; done
	if kill -0 "$1" 2>/dev/null; then kill -9 "$1"; wait "$1" 2>/dev/null; rc=timeout; return 1; fi
	wait "$1"; rc=$?
	return 0
}
# Peer-link security, as the product runs: tls_opts NODE prints the
# hareplicated options for host NODE in CA mode (--node NODE and its
# certificate; made on first use, one CA per test run, in $T/pki).
# HR_TEST_INSECURE=1 in the environment makes them `--insecure` instead.
# (Word-split on purpose where used: $T has no spaces.)
tls_opts() {
	if [ -n "${HR_TEST_INSECURE:-}" ]; then echo "--node $1 --insecure"; return; fi
	[ -f "$T/pki/ca/ca.crt" ] || { mkdir -p "$T/pki/ca" && "$HR" cert ca "$T/pki/ca" >/dev/null; } ||
		{ echo "# tls_opts: cannot make the CA" >&2; return 1; }
	[ -f "$T/pki/$1/host.crt" ] || { mkdir -p "$T/pki/$1" &&
		"$HR" cert host "$T/pki/$1" --name "$1" --ca "$T/pki/ca" >/dev/null; } ||
		{ echo "# tls_opts: cannot make a certificate for $1" >&2; return 1; }
	echo "--node $1 --tls-cert $T/pki/$1/host.crt --tls-key $T/pki/$1/host.key --tls-ca $T/pki/$1/ca.crt"
}
need_kvm() { [ -r /dev/kvm ] && [ -w /dev/kvm ] || skip_all "/dev/kvm not usable"; }
# ha_guest: the guest the HA scenario tests protect.  The HA logic (daemons,
# replication, roles, failover) does not depend on the hypervisor, so where
# /dev/kvm is not usable they run the mem backend's software guest, whose
# vCPU thread writes pages and prints `mem: step=N` (a promoted replica
# continues the very same sequence); the KVM backend keeps its own tests
# (t-kvm, check-linux).  HR_TEST_GUEST=mem picks the mem guest where KVM
# works too.  Prints one TAP comment saying which and why, and sets
#   HA_GUEST   kvm or mem (also the backend's name)
#   HA_KERNEL  the guest: memwalk.elf's path on KVM, mem: (the built-in guest)
#   HA_START   `hareplicate start` options naming the guest (word-split on
#              purpose: no spaces in paths): --kernel HA_KERNEL, and
#              --backend mem for mem
#   HA_DRILL   `hareplicate drill` option: empty on KVM (its default guest),
#              else --mem
#   HA_SEQ     what precedes the progress number in a console line: "seq="
#              (memwalk) or "step=" (mem)
ha_guest() {
	if [ "${HR_TEST_GUEST:-}" != mem ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		HA_GUEST=kvm HA_KERNEL="$GUESTS/memwalk.elf" HA_DRILL= HA_SEQ=seq=
		HA_START="--kernel $HA_KERNEL"
		diag "/dev/kvm usable: HA scenarios run KVM guests (memwalk; the drill's default netsvc)"
	else
		HA_GUEST=mem HA_KERNEL=mem: HA_DRILL=--mem HA_SEQ=step=
		HA_START="--backend mem --kernel $HA_KERNEL"
		if [ "${HR_TEST_GUEST:-}" = mem ]; then
			diag "HR_TEST_GUEST=mem: HA scenarios run the mem backend's software guest"
		else
			diag "no usable /dev/kvm: HA scenarios run the mem backend's software guest;" \
				"the KVM backend is covered by make check-linux"
		fi
	fi
}
# need_kvm_guest WHY: skip the whole test unless ha_guest chose KVM (a test
# of KVM device behaviour, not of HA logic).
need_kvm_guest() { [ "$HA_GUEST" = kvm ] || skip_all "$* needs a KVM guest (/dev/kvm not usable)"; }
# ha_append MEMWALK-CMDLINE: the guest command line for ha_guest's guest:
# as given on KVM; for mem the same pace, a line every interval_ms and rate
# page writes a second (steps_per_s=1000/interval_ms, writes=rate/steps_per_s).
ha_append() {
	if [ "$HA_GUEST" = kvm ]; then echo "$1"; return; fi
	_rate=1000 _iv=100
	for _kv in $1; do
		case $_kv in rate=*) _rate=${_kv#rate=} ;; interval_ms=*) _iv=${_kv#interval_ms=} ;; esac
	done
	_sps=$((1000 / _iv))
	[ "$_sps" -gt 0 ] || _sps=1
	_w=$((_rate / _sps))
	[ "$_w" -gt 0 ] || _w=1
	echo "steps_per_s=$_sps writes=$_w"
}
# last_seq FILE: the number of the last progress line (memwalk or mem) in FILE.
last_seq() { sed -n 's/.*\(memwalk: seq\|mem: step\)=\([0-9]*\).*/\2/p' "$1" | tail -n 1; }
# two_daemons FAILOVER_MS: hareplicated A and B on 127.0.0.1:$PA / $PB with
# control sockets $CA / $CB, state in $T/a, $T/b, logs appended to $T/a.log, $T/b.log;
# sets pida, pidb; both are killed when the test exits.  Their peer links
# are TLS (tls_opts a, tls_opts b).
two_daemons() {
	CA="$T/a/run/control.sock"
	CB="$T/b/run/control.sock"
	TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || return 1
	"$HRD" -f $TLS_A --control "$CA" --listen "127.0.0.1:$PA" --state-dir "$T/a/state" >>"$T/a.log" 2>&1 &
	pida=$!
	"$HRD" -f $TLS_B --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" \
		--failover-timeout "$1" >>"$T/b.log" 2>&1 &
	pidb=$!
	on_exit "kill -9 $pida $pidb 2>/dev/null"
}
# wait_true SECONDS CMD...: run CMD (bounded) until it succeeds; 1 on timeout.
wait_true() {
	_end=$(( $(date +%s%N) / 1000000 + $1 * 1000 ))
	shift
	while [ "$(( $(date +%s%N) / 1000000 ))" -lt "$_end" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
# field VMNAME KEY CONTROL: one value from `status --json` (KEY may be a.b)
field() {
	"$HR" status --json --control "$3" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
for v in d["vms"]:
    if v["name"] == sys.argv[1]:
        x = v
        for k in sys.argv[2].split("."):
            x = x[k] if x is not None else None
        print(x)
' "$1" "$2"
}
# wait_field VM KEY VALUE CONTROL SECONDS
wait_field() {
	_end=$(($(date +%s) + $5))
	while [ "$(date +%s)" -lt "$_end" ]; do
		[ "$(field "$1" "$2" "$4")" = "$3" ] && return 0
		sleep 0.1
	done
	return 1
}
# memwalk_stream_ok FILE...: the memwalk (or mem guest) console over several
# hosts' files (missing files count as empty): every line from 1 on present,
# exactly one content per seq (no contradiction), memwalk's own check at
# errors=0 (the mem guest has none), and at least 20 lines.
memwalk_stream_ok() {
	python3 - "$@" <<'PY'
import re, sys
seen = {}
for f in sys.argv[1:]:
    try:
        text = open(f, errors="replace").read()
    except FileNotFoundError:
        continue
    for line in re.findall(r"memwalk: seq=\d+ tsc=\d+ dirtied=\d+ errors=\d+|mem: step=\d+\.*$", text, re.M):
        n = int(re.search(r"(?:seq|step)=(\d+)", line).group(1))
        bad = line.startswith("memwalk") and not line.endswith("errors=0")
        if seen.get(n, line) != line or bad:
            print("# conflict or error at", n); sys.exit(1)
        seen[n] = line
top = max(seen) if seen else 0
missing = [n for n in range(1, top + 1) if n not in seen]
print("# seq 1 ..", top, "missing", missing[:5])
sys.exit(1 if missing or top < 20 else 0)
PY
}
# ram_pages_equal SRC DST: the per-page digests both sides of a migration
# wrote at the stop point (HR_TEST_MIGRATE_RAM_DIGEST: STATE-DIR/VM.ram-pages,
# one XXH3-64 per guest page) compared page by page.
ram_pages_equal() {
	python3 - "$1" "$2" <<'PY'
import sys
a, b = (open(f, "rb").read() for f in sys.argv[1:3])
n = len(a) // 8
diff = [i for i in range(n) if a[8 * i:8 * i + 8] != b[8 * i:8 * i + 8]]
print("# pages", n, "differing", len(diff), diff[:5])
sys.exit(0 if n > 0 and len(a) == len(b) and not diff else 1)
PY
}
