#!/bin/bash
# A real server end to end: a Linux guest runs a SQLite database on its
# virtio-blk disk (ext4 on /dev/vda; rollback journal, synchronous=FULL)
# behind a line server on its virtio-net (db-init.sh, db-serve.sh,
# mkdbimage.sh), protected from A to B at $HR_LINUX_EPOCH epochs; A's TAP
# and B's (hareplicated --replica-tap) are ports of one bridge, the client
# is this host.  The client writes numbered records and keeps every
# acknowledgement ("OK K": sent by the guest only once sqlite3 committed);
# A's daemon and worker are SIGKILLed mid-stream; B promotes; the client
# goes on (its connection, or a new one) and then reads every record back:
# every acknowledged record has its value, no record the client never sent
# is there.  Then the guest unmounts its disk and stops, and `e2fsck -n` of
# B's copy (its --disk-dir) finds it clean.
# Environment: HR_LINUX_DB_RECORDS (40; A dies after a third of them acked).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/linux/lib-linux.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root"
need_kvm
DBINITRD=${INITRD%/*}/db.cpio
DBDISK=${INITRD%/*}/db-disk.img.gz
[ -r "$KERNEL" ] && [ -r "$DBINITRD" ] && [ -r "$DBDISK" ] ||
	skip_all "no database guest ($DBINITRD, $DBDISK: mkdbimage.sh, run by make check-linux)"
E2FSCK=$(command -v e2fsck || echo /usr/sbin/e2fsck)
[ -x "$E2FSCK" ] || skip_all "no e2fsck"
SINK="$top_builddir/tests/linux/console-sink"
[ -x "$SINK" ] || skip_all "tests/linux/console-sink not built"
N=${HR_LINUX_DB_RECORDS:-40}
KILL_AT=$((N / 3))
ACK_S=240
IP=10.77.0.2
BR=hrdbbr
TA=hrdba
TB=hrdbb
M=/lib/modules/$(uname -r)
for m in llc stp bridge; do [ -f "$M/$m.ko" ] && insmod "$M/$m.ko" 2>/dev/null; done
on_exit "ip link del $TA 2>/dev/null; ip link del $TB 2>/dev/null; ip link del $BR 2>/dev/null"
{ ip link add "$BR" type bridge && ip addr add 10.77.0.1/24 dev "$BR" && ip link set "$BR" up &&
	ip tuntap add dev "$TA" mode tap && ip tuntap add dev "$TB" mode tap &&
	ip link set "$TA" master "$BR" up && ip link set "$TB" master "$BR" up; } ||
	skip_all "cannot make the bridge $BR and TAPs (bridge, tun modules, CAP_NET_ADMIN)"
plan 10
mkdir -p "$T/a" "$T/b/disks"
gzip -dc "$DBDISK" >"$T/a/disk.img" || { echo "Bail out! cannot unpack $DBDISK"; exit 1; }
PA=7311
PB=7312
PS=7313
CA="$T/a/run/control.sock"
CB="$T/b/run/control.sock"
"$SINK" $PS "$T/console" >"$T/sink.log" 2>&1 &
pids=$!
on_exit "kill -9 $pids 2>/dev/null"
TLS_A=$(tls_opts a) && TLS_B=$(tls_opts b) || { echo "Bail out! certificates"; exit 1; }
setsid "$HRD" -f $TLS_A --control "$CA" --listen "127.0.0.1:$PA" --state-dir "$T/a/state" >>"$T/a.log" 2>&1 &
pida=$!
"$HRD" -f $TLS_B --control "$CB" --listen "127.0.0.1:$PB" --state-dir "$T/b/state" --disk-dir "$T/b/disks" \
	--replica-tap "$TB" --failover-timeout "$FAILOVER_MS" --console-default "tcp:127.0.0.1:$PS" >>"$T/b.log" 2>&1 &
pidb=$!
on_exit 'kill_workers "$CA" "$CB"'
on_exit "kill -9 -- -$pida 2>/dev/null; kill -9 $pida $pidb 2>/dev/null"
wait_for "$T/a.log" "control $CA" 20 && wait_for "$T/b.log" "control $CB" 20
t0=$(date +%s%N)
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
"$HR" start db --control "$CA" --peer "127.0.0.1:$PB" --kernel "$KERNEL" --initrd "$DBINITRD" \
	--memory 256M --epoch "$EPOCH" --console "tcp:127.0.0.1:$PS" --net "tap=$TA" --disk "$T/a/disk.img" \
	--append "console=ttyS0 loglevel=4 db_ip=$IP" >"$T/start.out" 2>&1
rc=$?
ok '[ $rc = 0 ]' "start: the database guest is protected from A to B at $EPOCH epochs, its disk and TAP too (rc=$rc)"
sed 's/^/# start: /' "$T/start.out"
con() { tr -d '\000\r' <"$T/console"; }
up() { con | grep -q "^DB-UP"; }
ok 'wait_true "$BOOT_S" up && con | grep -q "^DB-UP .* journal=delete eth0=yes"' \
	"the guest mounts its ext4 disk, opens its database and listens"
diag "$(con | grep -m1 -E '^DB-(UP|FAIL)'): $(ms "$t0") ms after the start"

val() { echo "v$1-$((($1 * 7919) % 100003))"; }
# writer: PUT 1..N, one at a time, each until acknowledged (a lost or
# silent connection: a new one, the record sent again); every record
# sent is in $T/sent, every acknowledgement in $T/acked
writer() {
	local i=0 a k end
	exec 3<>"/dev/tcp/$IP/7000" || { echo "cannot connect" >>"$T/client.log"; return 1; }
	while [ $i -lt "$N" ]; do
		i=$((i + 1))
		echo "$i" >>"$T/sent"
		while :; do
			a='' k=''
			printf 'PUT %d %s\n' "$i" "$(val $i)" >&3 2>/dev/null &&
				read -r -t "$ACK_S" a k <&3 && [ "$a" = OK ] && [ "$k" = "$i" ] && break
			echo "$(date +%s.%N) record $i: no acknowledgement (read '$a $k'); a new connection" >>"$T/client.log"
			exec 3<&-
			end=$(($(date +%s) + ACK_S))
			until exec 3<>"/dev/tcp/$IP/7000"; do
				[ "$(date +%s)" -lt "$end" ] || { echo "cannot connect again" >>"$T/client.log"; return 1; }
				sleep 1
			done 2>/dev/null
		done
		echo "$i $(date +%s%N)" >>"$T/acked"
	done
	exec 3<&-
	echo "done" >>"$T/client.log"
}
: >"$T/sent"
: >"$T/acked"
: >"$T/client.log"
tw=$(date +%s%N)
writer &
wpid_client=$!
on_exit "kill -9 $wpid_client 2>/dev/null"
acked() { wc -l <"$T/acked"; }
enough() { [ "$(acked)" -ge "$KILL_AT" ]; }
ok 'wait_true 600 enough' "the client writes; $KILL_AT records acknowledged while A runs the guest"
diag "$(acked) records acknowledged in $(ms "$tw") ms"
E="$T/a/state/db.epochs"
[ -f "$E" ] && diag "A's epochs at $EPOCH: $(epoch_figures "$E")"
wpid=$("$HR" status --control "$CA" 2>/dev/null | sed -n 's/.* pid=\([0-9]*\).*/\1/p' | head -1)
tk=$(date +%s%N)
kill -9 -- "-$pida"
is_pid "$wpid" && kill -9 "$wpid"
at_kill=$(acked)
sent_at_kill=$(wc -l <"$T/sent")
ok 'is_pid "$wpid" && wait_true 10 sh -c "$(declare -f gone); gone $pida && gone $wpid"' "A's daemon and its worker ($wpid) are gone"
diag "SIGKILL of A with $at_kill records acknowledged, $sent_at_kill sent"
ok 'wait_true $((FAILOVER_MS / 1000 + 120)) sh -c "\"$HR\" status --control \"$CB\" | grep -q \"role=promoted state=promoted\""' \
	"B promotes itself (failover timeout $FAILOVER_MS ms)"
diag "B promoted $(ms "$tk") ms after the kill"
after() { [ "$(acked)" -gt "$at_kill" ]; }
wait_true $((ACK_S + 60)) after && diag "the first acknowledgement after the kill $(ms "$tk") ms after it"
wait_exit "$wpid_client" $((ACK_S * 2))
written=$(sort -un "$T/sent" | wc -l)
nacked=$(acked)
ok '[ "$rc" = 0 ] && [ "$nacked" = "$N" ]' "the client goes on on B: all $N records acknowledged (client rc=$rc, $nacked acknowledged)"
sed 's/^/# client: /' "$T/client.log"
diag "records written (sent) $written, acknowledged $nacked, in $(ms "$tw") ms; $((nacked - at_kill)) acknowledged by B in $(ms "$tk") ms after the kill"

# read back: every record sent and a few never sent, then STAT
reader() {
	local i
	exec 4<>"/dev/tcp/$IP/7000" || return 1
	for i in 0 $(seq 1 $((N + 5))); do
		printf 'GET %d\n' "$i" >&4
		read -r -t 60 line <&4 || return 1
		echo "$line"
	done
	echo STAT >&4
	read -r -t 60 line <&4 || return 1
	echo "$line"
}
reader >"$T/got" 2>"$T/reader.err"
rrc=$?
found=0
while read -r i _; do
	grep -qx "VAL $i $(val "$i")" "$T/got" && found=$((found + 1))
done <"$T/acked"
diag "records written $written, acknowledged $nacked, found $found (read back rc=$rrc)"
ok '[ "$rrc" = 0 ] && [ "$nacked" -gt 0 ] && [ "$found" = "$nacked" ]' \
	"every acknowledged record is there with its value ($found of $nacked)"
# rows: keys never sent answer nothing; every row is a key sent, with its value
stray=$(awk -v n="$written" '$1 == "VAL" && NF > 2 && ($2 < 1 || $2 > n) { print $2 }' "$T/got" | tr '\n' ' ')
wrong=$(awk '$1 == "VAL" && NF > 2 { print $2, $3 }' "$T/got" | while read -r i v; do
	[ "$v" = "$(val "$i")" ] || echo "$i=$v"; done | tr '\n' ' ')
stat=$(grep "^STAT " "$T/got")
read -r _ rows kmin kmax <<<"$stat"
diag "$stat (rows min max); never-sent keys found: '${stray}'; wrong values: '${wrong}'"
ok '[ -z "$stray" ] && [ -z "$wrong" ] && [ -n "$rows" ] && [ "$rows" -ge "$nacked" ] && [ "$rows" -le "$written" ] && [ "$kmin" -ge 1 ] && [ "$kmax" -le "$written" ]' \
	"no record the client never sent: GET of keys 0 and $((N + 1))..$((N + 5)) answers nothing, $rows rows, keys $kmin..$kmax"

# a clean stop: the guest unmounts its disk, then the copy on B is checked
wpidb=$("$HR" status --control "$CB" 2>/dev/null | sed -n 's/.* pid=\([0-9]*\).*/\1/p' | head -1)
bye=$( { exec 5<>"/dev/tcp/$IP/7000" && echo HALT >&5 && read -r -t 60 l <&5 && echo "$l"; } 2>/dev/null)
umounted() { con | grep -q "^DB-UMOUNT"; }
ok '[ "$bye" = BYE ] && wait_true 120 umounted && con | grep -q "^DB-UMOUNT rc=0"' \
	"the promoted guest unmounts its disk cleanly (DB-UMOUNT rc=0)"
diag "HALT: $bye, $(con | grep -m1 '^DB-UMOUNT')"
is_pid "$wpidb" && wait_true 60 sh -c "$(declare -f gone); gone $wpidb"
kill_workers "$CA" "$CB"
IMG="$T/b/disks/db/disk0.img"
"$E2FSCK" -n -f "$IMG" >"$T/fsck.out" 2>&1
frc=$?
sed 's/^/# fsck: /' "$T/fsck.out"
ok '[ -s "$IMG" ] && [ "$frc" = 0 ]' "e2fsck -n -f of B's copy ($IMG) finds it clean (rc=$frc)"
if [ "$_failed" != 0 ]; then
	diag "the console's last lines:"
	con | tail -15 | sed 's/^/#   /'
	grep -i -E "error|refus|disk|promot" "$T/b.log" | tail -10 | sed 's/^/# b.log: /'
fi
done_testing
