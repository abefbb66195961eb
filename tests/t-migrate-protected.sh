#!/bin/sh
# A protected VM migrates to a third host and its backup follows: three
# hareplicated (TLS), each in its own network namespace on one bridge.
# vm1 (ha_guest: memwalk on KVM, else the mem backend's guest) runs on A,
# protected by B; `migrate vm1 C`: B's copy is dropped when the live phase
# starts, C takes over, and C asks B (the VM's
# backup host, named in the migration's preamble) for a new backup: C runs
# vm1 protected by B.  Then C's worker is killed (SIGKILL): B promotes, the
# guest goes on there, and B is protected again by C's daemon.  Last, B's
# link to C is cut: B holds its output, a migration is refused, C promotes,
# and after the heal B stands down.  The console, read over A, C and B, must hold
# every line from 1 on exactly once in content (no gap, no contradiction)
# with memwalk's own check at errors=0 (the mem guest has none), and only
# one host prints at a time.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only)"
ha_guest
command -v python3 >/dev/null || skip_all "python3 not found"
command -v ip >/dev/null || skip_all "iproute2 not found"
plan 20

# hosts A, B, C: a namespace each, veths into a bridge in a fourth one
NS="hrmp-$$"
NET=10.216.$(($$ % 200))
on_exit "for n in a b c br; do ip netns del $NS-\$n 2>/dev/null; done"
mk_net() {
	ip netns add "$NS-br" && ip -n "$NS-br" link add br0 type bridge &&
		ip -n "$NS-br" link set br0 up || return 1
	i=1
	for h in a b c; do
		ip netns add "$NS-$h" && ip -n "$NS-$h" link set lo up &&
			ip -n "$NS-$h" link add eth0 type veth peer name "p$h" netns "$NS-br" &&
			ip -n "$NS-br" link set "p$h" master br0 && ip -n "$NS-br" link set "p$h" up &&
			ip -n "$NS-$h" addr add "$NET.$i/24" dev eth0 &&
			ip -n "$NS-$h" link set eth0 up || return 1
		i=$((i + 1))
	done
}
mk_net || { echo "Bail out! cannot make the namespaces"; exit 1; }
# the daemons and their VM workers (which outlive a daemon by design): all
# of this test's carry its own certificate paths
on_exit "pkill -9 -f '$T/pki/' 2>/dev/null"
P=$((20000 + ($$ + 11) % 20000))
# start HOST: that host's hareplicated on $NET.N:$P
start() {
	n=$(case $1 in a) echo 1 ;; b) echo 2 ;; c) echo 3 ;; esac)
	ip netns exec "$NS-$1" "$HRD" -f $(tls_opts "$1") --control "$T/$1/run/control.sock" \
		--listen "$NET.$n:$P" --state-dir "$T/$1/state" --failover-timeout 1000 \
		>>"$T/$1.log" 2>&1 &
	eval "pid$1=\$!"
	on_exit "kill -9 $! 2>/dev/null"
}
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
CC="$T/c/run/control.sock"
A() { "$HR" "$@" --control "$CA"; }
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
con() { echo "$T/$1/state/vm1.console"; }

HR_TEST_MIGRATE_RAM_DIGEST=1
export HR_TEST_MIGRATE_RAM_DIGEST
TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) && TLS_C=$(tls_opts c) ||
	{ echo "Bail out! cannot make certificates"; exit 1; }
start a
start b
start c
ok 'wait_for "$T/a.log" "control $CA" 10 && wait_for "$T/b.log" "control $CB" 10 && wait_for "$T/c.log" "control $CC" 10' \
	"three daemons start"
A start vm1 --peer "$NET.2:$P" $HA_START --memory 64M --epoch 25ms \
	--append "$(ha_append "rate=1000 wss=4M interval_ms=50")" >/dev/null 2>"$T/err"
ok 'wait_field vm1 state protected "$CA" 30 && wait_for "$(con a)" "${HA_SEQ}5\b" 20' \
	"vm1 runs on A, protected by B"

# --- A -> C: the backup follows (B) ---
A migrate vm1 "$NET.3:$P" >"$T/mig" 2>"$T/mig.err"; rc=$?
ok '[ $rc = 0 ] && grep -q "migrated vm1: it runs on $NET.3:$P now" "$T/mig"' \
	"migrate vm1 A -> C: exit 0 (rc=$rc $(tail -1 "$T/mig.err"))"
da=$(sed -n 's/.*guest RAM at the stop point xxh3=\([0-9a-f]*\).*/\1/p' "$T/a.log" | tail -1)
dc=$(sed -n 's/.*guest RAM at the hand-off xxh3=\([0-9a-f]*\).*/\1/p' "$T/c.log" | tail -1)
ok '[ -n "$da" ] && [ "$da" = "$dc" ] && ram_pages_equal "$T/a/state/vm1.ram-pages" "$T/c/state/vm1.ram-pages"' \
	"guest RAM on C equals A's at the stop point, page by page (xxh3 of all $da / $dc)"
ok 'wait_field vm1 state protected "$CC" 30 && [ "$(field vm1 role "$CC")" = primary ] && [ "$(field vm1 peer "$CC")" = "$NET.2:$P" ]' \
	"C runs vm1 protected, its backup on B (peer $(field vm1 peer "$CC"))"
ok '[ "$(field vm1 role "$CB")" = backup ] && grep -q "backup replica for the primary at $NET.3" "$T/b.log"' \
	"B holds a new copy, from C"
ok 'A status | grep -q "^no VMs"' "A forgot vm1"
sa=$(size "$(con a)")
sc=$(size "$(con c)")
grown_c() { [ "$(size "$(con c)")" -gt "$sc" ]; }
ok 'wait_true 5 grown_c && [ "$(size "$(con a)")" = "$sa" ] && [ "$(size "$(con b)")" = 0 ]' \
	"only C prints now"
ok 'memwalk_stream_ok "$(con a)" "$(con c)"' "console A then C: no gap, no contradiction"

# --- C's worker dies: B promotes ---
wc=$(field vm1 pid "$CC")
ok 'kill_pid -9 "$wc"' "SIGKILL of the primary's worker on C (pid $wc)"
b_primary() { [ "$(field vm1 role "$CB")" = primary ]; }
ok 'wait_true 15 b_primary && grep -q "+promoted" "$T/b.log"' "B takes over (+promoted)"
sb=$(size "$(con b)")
grown_b() { [ "$(size "$(con b)")" -gt "$sb" ] && [ "$(size "$(con b)")" -gt 200 ]; }
ok 'wait_true 10 grown_b' "B prints"
ok 'wait_for "$(con b)" "$HA_SEQ$(($(grep -c "$HA_SEQ" "$(con c)") + $(grep -c "$HA_SEQ" "$(con a)") + 20))\b" 20 && memwalk_stream_ok "$(con a)" "$(con c)" "$(con b)"' \
	"console over A, C, B: every line from 1 on, none contradicted, errors=0"
ok 'wait_field vm1 state protected "$CB" 30 && [ "$(field vm1 role "$CC")" = backup ]' \
	"C's daemon lived on: B re-protects vm1 with it (C holds the backup)"
ok '! grep -q "two hosts speak" "$T/a.log" "$T/b.log" "$T/c.log"' "never two speakers"
# --- B's link to its backup C cut (silent): B holds its output; a migration
# is refused (C may promote behind the cut); C does promote; after the
# heal B stands down ---
nft_b() { ip netns exec "$NS-b" nft "$@"; }
nft_b add table inet hrmp && nft_b add chain inet hrmp in '{ type filter hook input priority 0; }' &&
	nft_b add chain inet hrmp out '{ type filter hook output priority 0; }' &&
	nft_b add rule inet hrmp in ip saddr "$NET.3" drop &&
	nft_b add rule inet hrmp out ip daddr "$NET.3" drop
held_b() { [ "$(field vm1 output_held "$CB")" = True ]; }
ok 'wait_true 15 held_b' "B's backup link cut: B holds vm1's output"
"$HR" migrate vm1 "$NET.1:$P" --control "$CB" >"$T/mig2" 2>"$T/mig2.err"; rc=$?
ok '[ $rc = 1 ] && grep -q "output is held" "$T/mig2.err"' \
	"migrate while held: refused, exit 1 (rc=$rc $(cat "$T/mig2.err"))"
c_promoted() { [ "$(field vm1 role "$CC")" = promoted ]; }
ok 'wait_true 15 c_promoted && grep -q "+promoted" "$T/c.log"' "C promotes behind the cut"
nft_b delete table inet hrmp
# (B's entry may already hold C's new backup: C asks B for one)
b_down() {
	grep -q "+stand-down\|+demoted" "$T/b.log" || return 1
	r=$(field vm1 role "$CB")
	[ "$r" != primary ] && [ "$r" != promoted ]
}
ok 'wait_true 20 b_down' "healed: B stands down (+stand-down; it no longer runs vm1)"
ok 'wait_for "$(con c)" "$HA_SEQ$(($(last_seq "$(con b)") + 20))\b" 20 && memwalk_stream_ok "$(con a)" "$(con c)" "$(con b)"' \
	"the console over A, C, B, C: every line once, none contradicted"
"$HR" stop vm1 --control "$CB" >/dev/null 2>&1
"$HR" stop vm1 --control "$CC" >/dev/null 2>&1
grep -E '^[0-9:.]+ (warning|error)' "$T/a.log" "$T/b.log" "$T/c.log" | head -20 | sed 's/^/# /'
done_testing
