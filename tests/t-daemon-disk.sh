#!/bin/sh
# hareplicated with disks (mem backend's disk guest, loopback): the backup
# keeps its copy in --disk-dir/VM/disk0.img, created sparse (0600, in a
# 0700 directory) with the primary's size; `status` shows each disk (path,
# size) on both hosts; after the primary dies the promoted guest finds every
# block it wrote (diskcheck errors=0); failback: the old primary's daemon
# takes the copy back onto the VM's own --disk image; an existing image of
# the wrong size refuses the primary, the reason in the backup's log and in
# the primary's answer.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (the control socket is root-only)"
command -v python3 >/dev/null || skip_all "python3 not found"
HR_TEST_GUEST=mem ha_guest # the disk guest is the mem backend's
plan 18

PA=$((20000 + ($$ + 7) % 20000))
PB=$((PA + 1))
A() { "$HR" "$@" --control "$CA"; }
B() { "$HR" "$@" --control "$CB"; }
MIB=1048576
# jfield VM KEY CONTROL: as lib.sh's field, KEY's parts may be list indices
jfield() {
	"$HR" status --json --control "$3" 2>/dev/null | python3 -c '
import json, sys
for v in json.load(sys.stdin)["vms"]:
    if v["name"] == sys.argv[1]:
        x = v
        for k in sys.argv[2].split("."):
            x = x[int(k)] if isinstance(x, list) and int(k) < len(x) else x.get(k) if isinstance(x, dict) else None
        print(x)
' "$1" "$2"
}
wait_jfield() { # VM KEY VALUE CONTROL SECONDS
	_end=$(($(date +%s) + $5))
	while [ "$(date +%s)" -lt "$_end" ]; do
		[ "$(jfield "$1" "$2" "$4")" = "$3" ] && return 0
		sleep 0.1
	done
	return 1
}
[ -n "${HR_TEST_KEEP_LOGS:-}" ] && on_exit "cp $T/a.log $T/b.log $T/c.log $T/b/state/*.console $HR_TEST_KEEP_LOGS/ 2>/dev/null"
DISKGUEST="steps_per_s=20 writes=8 disk_writes=4 disk_flush=1"

two_daemons 500
ok 'wait_for "$T/a.log" "control $CA" 10 && wait_for "$T/b.log" "control $CB" 10' "two daemons start"

# --- d1: a new copy in B's disk dir ---
truncate -s $((16 * MIB)) "$T/d1.img"
A start d1 --peer "127.0.0.1:$PB" $HA_START --memory 64M --append "$DISKGUEST" \
	--disk "$T/d1.img" >/dev/null 2>"$T/err"
IMG="$T/b/state/disks/d1/disk0.img"
ok 'wait_field d1 state protected "$CA" 30 && wait_field d1 state backup "$CB" 10' \
	"d1 with a disk: protected, B holds a committed epoch"
ok '[ -f "$IMG" ] && [ "$(stat -c %s "$IMG")" = $((16 * MIB)) ] && [ "$(stat -c %a "$IMG")" = 600 ] &&
	[ "$(stat -c %a "$T/b/state/disks/d1")" = 700 ]' \
	"B: DISK-DIR/d1/disk0.img created: 16 MiB, mode 0600, directory 0700"
ok 'grep -q "d1.*backup: disk 0: created $IMG (16777216 bytes, sparse)" "$T/b.log"' \
	"B's log names the VM and the image it created"
ok 'wait_jfield d1 disks.0.path "$IMG" "$CB" 5 && [ "$(jfield d1 disks.0.bytes "$CB")" = $((16 * MIB)) ] &&
	[ "$(jfield d1 disks.0.path "$CA")" = "$T/d1.img" ] && A status d1 | grep -q "disk0 $T/d1.img bytes=16777216"' \
	"status (text and JSON) shows each host's image and its size"
ok 'wait_true 10 sh -c "[ \$(stat -c %b \"$IMG\") -gt 0 ]"' "B's image receives the primary's writes"

# --- the primary dies: B's promoted guest reads back every block it wrote ---
wa=$(field d1 pid "$CA")
kill_pid -9 "$wa"
wait_field d1 state promoted "$CB" 15
wait_for "$T/b/state/d1.console" "diskcheck" 10
check=$(grep -o "diskcheck.*" "$T/b/state/d1.console" 2>/dev/null | head -n 1)
ok 'echo "$check" | grep -Eq "^diskcheck blocks=[1-9][0-9]* errors=0$"' \
	"A's worker killed: B promotes, its guest's diskcheck finds errors=0 ($check)"

# --- failback: A's daemon takes the copy back onto d1's own image ---
ok 'wait_for "$T/a.log" "d1.*backup: disk 0: $T/d1.img \(this host.s own definition" 20 &&
	wait_field d1 state backup "$CA" 30' \
	"re-protection to A: its backup uses the VM's own --disk path, not the disk dir"
ok '[ ! -e "$T/a/state/disks/d1" ]' "A created nothing in its disk dir for a VM it defines"
B stop d1 >/dev/null 2>&1
wait_field d1 state stopped "$CB" 10
A stop d1 >/dev/null 2>&1

# --- d2: an existing image of another size refuses the primary ---
mkdir -p "$T/b/state/disks/d2" && truncate -s $((8 * MIB)) "$T/b/state/disks/d2/disk0.img"
truncate -s $((16 * MIB)) "$T/d2.img"
A start d2 --peer "127.0.0.1:$PB" $HA_START --memory 64M --append "$DISKGUEST" \
	--disk "$T/d2.img" >"$T/out" 2>"$T/err"; rc=$?
why="disk 0 image $T/b/state/disks/d2/disk0.img is 8388608 bytes, the primary's disk 16777216 bytes"
ok 'wait_for "$T/b.log" "d2.*refusing the primary: $why" 15' "B refuses d2: its log names the image and both sizes"
ok 'wait_true 10 sh -c "\"$HR\" status d2 --control \"$CA\" | grep -q \"$why\" || grep -q \"$why\" \"$T/err\""' \
	"the reason reaches the primary's side (start's answer or status)"
ok '[ "$(stat -c %s "$T/b/state/disks/d2/disk0.img")" = $((8 * MIB)) ]' "the mismatched image is left as it was"

# --- d3: a backup whose disk fails drops its copy; the primary's status says why ---
PC=$((PB + 2))
CC="$T/c/run/control.sock"
TLS_C=$(tls_opts c)
HR_TEST_DISK_FAIL_AFTER=40 "$HRD" -f $TLS_C --control "$CC" --listen "127.0.0.1:$PC" \
	--state-dir "$T/c/state" --failover-timeout 500 >>"$T/c.log" 2>&1 &
pidc=$!
on_exit "kill -9 $pidc 2>/dev/null"
wait_for "$T/c.log" "control $CC" 10
truncate -s $((16 * MIB)) "$T/d3.img"
A start d3 --peer "127.0.0.1:$PC" $HA_START --memory 64M --append "$DISKGUEST" \
	--disk "$T/d3.img" >/dev/null 2>"$T/err"
why="the backup dropped its copy: applying a committed epoch's disk write failed"
ok 'wait_true 20 sh -c "\"$HR\" status d3 --control \"$CA\" | grep -qF \"$why\""' \
	"C's disk fails (EIO): A's status says its backup dropped its copy, and why"
ok 'wait_true 10 sh -c "\"$HR\" status --json --control \"$CA\" | grep -qF \"\\\"backup_dropped_why\\\": \\\"$why\""' \
	"status --json: backup_dropped_why says the same"
ok 'grep -q "d3: +output-released" "$T/a.log" && ! grep -q "d3: +promot" "$T/c.log"' \
	"A's guest speaks on; C, whose copy is invalid, never promotes"
A stop d3 >/dev/null 2>&1

# --- d4: migrate moves the disk with the VM (the destination's session
# synchronises its copy first; the guest checks its disk after the hand-off) ---
truncate -s $((16 * MIB)) "$T/d4.img"
A start d4 --peer "127.0.0.1:$PB" $HA_START --memory 64M --append "$DISKGUEST" \
	--disk "$T/d4.img" >/dev/null 2>"$T/err"
ok 'wait_field d4 state protected "$CA" 30' "d4 with a disk: protected from A to B"
A migrate d4 "127.0.0.1:$PB" >"$T/mig.out" 2>&1
rc=$?
ok '[ $rc = 0 ] && wait_true 20 sh -c "\"$HR\" status d4 --control \"$CB\" | grep -Eq \"role=primary state=(protected|unprotected)\""' \
	"migrate d4 to B: B runs it (rc=$rc: $(tail -n 1 "$T/mig.out"))"
wait_for "$T/b/state/d4.console" "diskcheck" 10
check=$(grep -o "diskcheck.*" "$T/b/state/d4.console" 2>/dev/null | head -n 1)
ok 'echo "$check" | grep -Eq "^diskcheck blocks=[1-9][0-9]* errors=0$" && [ -f "$T/b/state/disks/d4/disk0.img" ]' \
	"after the hand-off B's guest finds every block it wrote on B's copy in its disk dir ($check)"
B stop d4 >/dev/null 2>&1
A stop d4 >/dev/null 2>&1
done_testing
