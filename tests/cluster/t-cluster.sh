#!/bin/sh
# A VM (ha_guest: memwalk on KVM, else the mem backend's guest, the agent's
# backend=mem) as a promotable Pacemaker resource (ocf:hareplicate:vm) on a
# real two-node cluster (tests/cluster/cluster.sh: corosync + qdevice/qnetd,
# pacemaker, fencing that kills a node's cgroup), the contract checked from
# outside by a console collector in the "world" namespace:
#   0. a planned switchover: the promoted role is moved to the other node
#      (crm_resource --move --promoted): demote (the guest pauses, a final
#      epoch acknowledged), promote the peer (it runs from that epoch), the
#      old primary becomes its backup - nobody fenced, one speaker change
#   1. the primary node's corosync is killed (SIGKILL)
#   2. the primary node hangs (every process frozen, as SIGSTOP)
#   3. the link between the nodes is cut (nftables drop) while both reach qnetd
# After each, the lost node is fenced (its processes gone), the other is
# promoted, and then (4.) the fenced node boots again, rejoins as unpromoted,
# is resynchronised and protects the VM again.  Checked: no gap, no
# contradiction, one host releasing output at a time (exactly one speaker
# change per failover), progress after each failover.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root"
ha_guest
for c in corosync corosync-qnetd corosync-qdevice pacemakerd crm_mon nft nsenter unshare python3; do
	command -v $c >/dev/null || skip_all "$c not found (quickstart.sh installs it)"
done
CL_SRC="$top_srcdir/tests/cluster"
CL_AGENT="$top_srcdir/contrib/ocf/hareplicate"
. "$CL_SRC/cluster.sh"
plan 37

now_ms() { echo $(($(date +%s%N) / 1000000)); }
VMC=/run/hareplicate/vm1.sock
# hr NODE ARGS: hareplicate on that node, on the resource's daemon
hr() { _h=$1; shift; cl_exec "$_h" "$HR" "$@" --control "$VMC"; }
vmf() { # vmf NODE KEY
	hr "$1" status --json 2>/dev/null | python3 -c '
import json, sys
try: d = json.load(sys.stdin)
except Exception: sys.exit(0)
for v in d["vms"]:
    if v["name"] == "vm1":
        x = v
        for k in sys.argv[1].split("."): x = x.get(k) if isinstance(x, dict) else None
        print(x)' "$2"
}
is_state() { [ "$(vmf "$1" state)" = "$2" ]; }
runs_on() { # the guest runs there and is protected
	is_state "$1" protected
}
col() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T/console.json" "$1"; }
seq_now() { col 'd["last_seq"] or 0'; }
progress() { # progress N: the guest's seq grows by N from now (the world sees the guest)
	_s0=$(seq_now)
	wait_true 30 sh -c "[ \$(python3 -c 'import json; print(json.load(open(\"$T/console.json\"))[\"last_seq\"] or 0)') -ge $((_s0 + $1)) ]"
}
runs_somewhere() { runs_on a || runs_on b; }
fenced_more() { [ "$(fenced "$1")" -gt "$2" ]; }
either_fenced() { fenced_more a "$1" || fenced_more b "$2"; }
guest_on() { is_state "$1" promoted || is_state "$1" unprotected || is_state "$1" protected || is_state "$1" backup-silent ||
	{ [ "$(vmf "$1" role)" = primary ] && { is_state "$1" connecting || is_state "$1" syncing; }; }; }
# (a primary re-protecting itself - connecting, syncing - runs its guest too)
pair_ok() { is_state "$1" backup && is_state "$2" protected; }
not_held() { [ "$(vmf "$1" output_held)" = False ]; }
alone_released() { is_state "$1" unprotected && not_held "$1"; }
node_has() { for _p in $(cl_node_procs "$1"); do [ "$(cat /proc/$_p/comm 2>/dev/null)" = "$2" ] && return 0; done; return 1; }
no_daemons() { ! node_has a hareplicated && ! node_has b hareplicated; }
other() { [ "$1" = a ] && echo b || echo a; }
fenced() { grep -c "fenced $1:" "$CL_DIR/fence.log" 2>/dev/null || echo 0; }

cl_init "hrcl$$" || { echo "Bail out! cannot set up the cluster's namespaces"; exit 1; }
# CL_KEEP=DIR keeps the nodes' logs there (after the teardown)
[ -z "${CL_KEEP:-}" ] || on_exit 'rm -rf "$CL_KEEP"; cp -r "$CL_DIR" "$CL_KEEP"; cp "$T"/*.json "$T"/*.err "$CL_KEEP" 2>/dev/null'
cl_node_add a 1 && cl_node_add b 2 || { echo "Bail out! cannot add the nodes"; exit 1; }
CPORT=$((30000 + $$ % 20000))
CL_RESOURCES="      <clone id=\"vm1-clone\">
        <meta_attributes id=\"vm1-clone-meta\">
          <nvpair id=\"vm1-promotable\" name=\"promotable\" value=\"true\"/>
          <nvpair id=\"vm1-pmax\" name=\"promoted-max\" value=\"1\"/>
          <nvpair id=\"vm1-cmax\" name=\"clone-max\" value=\"2\"/>
          <nvpair id=\"vm1-cnmax\" name=\"clone-node-max\" value=\"1\"/>
          <nvpair id=\"vm1-notify\" name=\"notify\" value=\"true\"/>
        </meta_attributes>
        <primitive id=\"vm1\" class=\"ocf\" provider=\"hareplicate\" type=\"vm\">
          <instance_attributes id=\"vm1-ia\">
            <nvpair id=\"vm1-vm\" name=\"vm\" value=\"vm1\"/>
            <nvpair id=\"vm1-kernel\" name=\"kernel\" value=\"$HA_KERNEL\"/>
            <nvpair id=\"vm1-backend\" name=\"backend\" value=\"$HA_GUEST\"/>
            <nvpair id=\"vm1-peers\" name=\"peers\" value=\"a=$CL_NET.1:7788 b=$CL_NET.2:7788\"/>
            <nvpair id=\"vm1-epoch\" name=\"epoch\" value=\"50ms\"/>
            <nvpair id=\"vm1-mem\" name=\"memory\" value=\"64M\"/>
            <nvpair id=\"vm1-append\" name=\"append\" value=\"$(ha_append "rate=500 wss=2M interval_ms=50")\"/>
            <nvpair id=\"vm1-console\" name=\"console\" value=\"tcp:$CL_NET.254:$CPORT\"/>
            <nvpair id=\"vm1-fto\" name=\"failover_timeout\" value=\"1000\"/>
            <nvpair id=\"vm1-dopts\" name=\"daemon_options\" value=\"--insecure\"/>
            <nvpair id=\"vm1-state\" name=\"state_dir\" value=\"/var/lib/pacemaker/hr-vm1\"/>
            <nvpair id=\"vm1-control\" name=\"control\" value=\"$VMC\"/>
            <nvpair id=\"vm1-hr\" name=\"hareplicate\" value=\"$HR\"/>
            <nvpair id=\"vm1-hrd\" name=\"hareplicated\" value=\"$HRD\"/>
          </instance_attributes>
          <operations>
            <op id=\"vm1-mon-p\" name=\"monitor\" interval=\"2s\" role=\"Promoted\" timeout=\"10s\"/>
            <op id=\"vm1-mon-u\" name=\"monitor\" interval=\"3s\" role=\"Unpromoted\" timeout=\"10s\"/>
            <op id=\"vm1-start\" name=\"start\" interval=\"0\" timeout=\"20s\"/>
            <op id=\"vm1-stop\" name=\"stop\" interval=\"0\" timeout=\"30s\"/>
            <op id=\"vm1-promote\" name=\"promote\" interval=\"0\" timeout=\"30s\"/>
            <op id=\"vm1-demote\" name=\"demote\" interval=\"0\" timeout=\"20s\"/>
            <op id=\"vm1-notify-op\" name=\"notify\" interval=\"0\" timeout=\"10s\"/>
          </operations>
        </primitive>
      </clone>
"
cl_write_config || { echo "Bail out! cannot write the configuration"; exit 1; }
ip netns exec "$CL_W" nice -n 5 python3 "$CL_SRC/console-collect.py" "$CPORT" "$CL_NET.254" \
	"$T/console.json" 2>>"$T/collector.err" &
colpid=$!
on_exit "kill $colpid 2>/dev/null"
cl_qnetd_start
t0=$(now_ms)
ok 'cl_node_start a && cl_node_start b' "both nodes boot (corosync, qdevice, pacemaker in their namespaces)"
ok 'cl_wait_online 60 a a b' "the cluster forms: a and b online"
diag "online $(($(now_ms) - t0)) ms after boot"

# --- the VM is started by the cluster: promoted on one node, backup on the other
ok 'wait_true 90 runs_somewhere' "the cluster promotes vm1 somewhere and it is protected"
P=a; runs_on b && P=b
Q=$(other $P)
ok 'wait_true 30 is_state $Q backup' "$Q holds the backup copy"
diag "vm1 protected $(($(now_ms) - t0)) ms after the nodes booted"
ok 'progress 10' "the world sees the guest's console"
promoted_in_crm() { cl_exec $1 crm_mon -1 | grep -Eq "Promoted: \[ $1 \]"; }
ok "wait_true 20 promoted_in_crm $P" "Pacemaker reports vm1 promoted on $P"

# --- 0. a planned switchover: the promoted role moves to $Q
sw0=$(col 'len(d["switches"])')
fa=$(fenced a)
fb=$(fenced b)
tf=$(now_ms)
ok 'cl_exec $P crm_resource --move --promoted -r vm1-clone -N $Q >/dev/null 2>&1' \
	"switchover: the promoted role is moved to $Q (crm_resource --move --promoted)"
ok 'wait_true 60 pair_ok $P $Q' \
	"switchover: $Q runs vm1 from $P's final epoch, $P is its backup, protected again"
diag "switchover: protected on $Q $(($(now_ms) - tf)) ms after the move"
ok 'progress 10' "switchover: the world sees the guest go on"
ok '[ "$(fenced a)" -eq "$fa" ] && [ "$(fenced b)" -eq "$fb" ] && [ "$(col "len(d[\"switches\"])")" -eq $((sw0 + 1)) ] && [ "$(col "len(d[\"violations\"])")" = 0 ] && [ "$(col "d[\"pending\"]")" = 0 ]' \
	"switchover: nobody fenced, exactly one speaker change, no gap, no contract violation"
cl_exec $P crm_resource --clear -r vm1-clone >/dev/null 2>&1
_p=$P; P=$Q; Q=$_p

# failover NAME CAUSE: after CAUSE was done to $P, $P is fenced, $Q promoted
failover_checks() {
	_f0=$2
	ok 'wait_true 60 fenced_more $P $_f0' "$1: $P is fenced"
	ok 'cl_node_down $P' "$1: no process of $P is left"
	ok 'wait_true 60 guest_on $Q' "$1: vm1 runs on $Q"
	diag "$1: vm1 runs on $Q $(($(now_ms) - tf)) ms after the fault"
	ok 'progress 10' "$1: the world sees the guest go on"
	diag "$1: the world saw 10 more lines $(($(now_ms) - tf)) ms after the fault"
}
# rejoin: $P boots again, becomes the backup, and the VM is protected again
rejoin() {
	ok 'cl_node_start $P && cl_wait_online 60 $Q $P $Q' "$1: $P boots and rejoins the cluster"
	tr=$(now_ms)
	ok 'wait_true 90 pair_ok $P $Q' "$1: $P is resynchronised as the backup, $Q protected again"
	diag "$1: protected again $(($(now_ms) - tr)) ms after $P was online"
	_p=$P; P=$Q; Q=$_p
}

# --- 1. the primary node's corosync dies
f0=$(fenced $P)
tf=$(now_ms)
for pid in $(cl_node_procs $P); do
	[ "$(cat /proc/$pid/comm 2>/dev/null)" = corosync ] && kill -9 "$pid"
done
failover_checks "corosync killed" "$f0"
rejoin "corosync killed"

# --- 2. the primary node hangs
f0=$(fenced $P)
tf=$(now_ms)
echo 1 >"$CL_CG/$P/cgroup.freeze"
failover_checks "node frozen" "$f0"
rejoin "node frozen"

# --- 3. the link between the nodes is cut; both still reach qnetd
cut() { # cut NODE OTHER-IP
	cl_exec "$1" nft -f - <<NFT
table inet hrcut {
	chain in { type filter hook input priority 0; ip saddr $2 drop; }
	chain out { type filter hook output priority 0; ip daddr $2 drop; }
}
NFT
}
fa=$(fenced a)
fb=$(fenced b)
tf=$(now_ms)
ok 'cut a $CL_NET.2 && cut b $CL_NET.1' "link cut: a and b drop each other's packets"
ok 'wait_true 60 either_fenced $fa $fb' "link cut: one node is fenced"
L=a; [ "$(fenced b)" -gt "$fb" ] && L=b
ok '[ "$(fenced $(other $L))" -eq "$( [ $L = a ] && echo $fb || echo $fa)" ]' \
	"link cut: only $L is fenced (the other partition kept quorum through qnetd)"
if [ "$L" = "$P" ]; then
	diag "link cut: the primary's side ($P) lost: failover to $Q"
	failover_checks "link cut" "$f0"
	P_was=$P
else
	diag "link cut: the backup's side ($Q) lost: $P keeps the VM"
	ok 'cl_node_down $Q' "link cut: no process of $Q is left"
	ok 'wait_true 10 guest_on $P' "link cut: vm1 still runs on $P ($(vmf $P role) $(vmf $P state))"
	ok 'wait_true 30 alone_released $P' \
		"link cut: the cluster's word (notify) drops the silent backup, $P's output leaves without it"
	diag "link cut: $P speaks alone $(($(now_ms) - tf)) ms after the fault"
	ok 'progress 10' "link cut: the world sees the guest go on"
	_p=$P; P=$Q; Q=$_p
fi
# the link is back only with the fenced node's new boot (its namespace kept the rules)
cl_exec $Q nft delete table inet hrcut 2>/dev/null
ip netns exec "$CL_ID-$P" nft delete table inet hrcut 2>/dev/null
rejoin "link cut"

# --- the whole run as the world saw it
ok 'progress 10' "the guest still progresses at the end"
diag "collector: $(cat "$T/console.json")"
ok '[ "$(col "len(d[\"violations\"])")" = 0 ]' "no contract violation seen from outside: $(col 'd["violations"][:3]')"
ok '[ "$(col "d[\"pending\"]")" = 0 ]' "no gap: nothing waits for missing bytes"
ok '[ "$(col "len(d[\"switches\"])")" -le 4 ]' "one speaker at a time: $(col 'len(d["switches"])') speaker change(s) for a switchover and at most 3 failovers"
ok '[ "$(col "d[\"lines\"]")" -gt 100 ]' "progress lines checked: $(col 'd["lines"]')"

# --- the cluster stops the resource cleanly
cl_exec $P crm_resource -r vm1-clone --meta -p target-role -v Stopped >/dev/null 2>&1
ok 'wait_true 60 no_daemons' \
	"target-role=Stopped: demote, stop: no hareplicated left on either node"
done_testing
