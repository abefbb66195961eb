#!/bin/sh
# The backup refuses a primary whose guest CPU this host cannot give
# (issue 11): a real hareplicated gets HELLOs (tests/hello-send) whose CPU
# model is this host's KVM CPUID table with one feature bit the host lacks,
# or with another vendor: refused with -HR_ECPU, the leaf, register and
# bits (or the vendors) named to the primary and in the backup's log; the
# host's own model is accepted.  The check itself: tests/t-kvm-cpuid.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only)"
need_kvm
plan 6
PB=$((20000 + ($$ + 11) % 20000))
CB="$T/b/run/control.sock"
TLS_B=$(tls_opts b) && tls_opts a >/dev/null || exit 1
"$HRD" -f $TLS_B --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" >>"$T/b.log" 2>&1 &
pidb=$!
on_exit "kill -9 $pidb 2>/dev/null"
ok 'wait_for "$T/b.log" "control $CB" 10' "a backup daemon starts"
HELLO_TLS="a $T/pki/a/host.crt $T/pki/a/host.key $T/pki/a/ca.crt"
[ -n "${HR_TEST_INSECURE:-}" ] && HELLO_TLS=""
hello() { HR_HELLO_CPU=$2 "$top_builddir/tests/hello-send" "$PB" "$1" $((64 << 20)) 1 $HELLO_TLS >"$T/$1.out" 2>&1; }

hello lacking lacking
what=$(sed -n 's/^cpu: //p' "$T/lacking.out")
ok '[ -n "$what" ] && grep -q "^refused: .*lacks features.*$what" "$T/lacking.out"' \
	"a guest CPU with a feature bit this host lacks is refused, naming it: $(tail -1 "$T/lacking.out")"
ok 'wait_for "$T/b.log" "lacking: refusing the primary: .*$what" 10' \
	"the backup's log names the VM, the leaf, register and bits"
grep "refusing the primary" "$T/b.log" | head -2 | sed 's/^/# b.log: /'
hello other vendor
ok 'grep -q "^refused: .*vendor .HRtestCPUxyz., this host.s is" "$T/other.out"' \
	"a guest CPU of another vendor is refused: $(tail -1 "$T/other.out")"
hello same host
ok 'grep -q "^accepted" "$T/same.out"' "the host's own CPU model is accepted: $(tail -1 "$T/same.out")"
ok 'wait_for "$T/b.log" "same.*(replica worker ended|start failed)" 20 && ! grep -q "killed by signal" "$T/b.log"' \
	"the replica worker ends once the primary is gone, no worker died of a signal"
done_testing
