#!/bin/sh
# Save a running memwalk in one process, restore it in another: the guest
# continues with the same observable state (progress numbering, 0 self-check
# errors, TSC never backwards), also when saved right after the start and
# restored at once.  Then damaged snapshot files are refused.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_kvm
plan 15

"$HR" run --kernel "$GUESTS/memwalk.elf" --memory 128M --name snap1 \
	--append "rate=3000 wss=8M interval_ms=40" --snapshot "$T/snap" >"$T/out1" 2>"$T/err1" &
pid=$!
on_exit "kill -9 $pid 2>/dev/null"
ok 'wait_for "$T/out1" "seq=15 " 40' "first process runs memwalk to seq 15"
kill -USR1 $pid
ok 'wait_for "$T/err1" "snapshot written" 20' "SIGUSR1 writes a snapshot and the guest goes on"
ok 'wait_for "$T/out1" "seq=25 " 20' "guest continues after SIGUSR1"
kill -USR2 $pid
wait_exit $pid 30
ok '[ "$rc" = 0 ] && [ -s "$T/snap" ]' "SIGUSR2 writes a snapshot and exits 0 (rc=$rc)"
size=$(stat -c %s "$T/snap")
diag "snapshot: $size bytes for a 128 MiB guest"

"$HR" restore "$T/snap" >"$T/out2" 2>"$T/err2" &
pid2=$!
on_exit "kill -9 $pid2 2>/dev/null"
ok 'wait_for "$T/out2" "seq=[0-9]+ " 30' "restored guest prints progress in a new process"
# The last whole number: SIGUSR2 may cut the last line anywhere, "seq=4" of
# seq=41 included (the restored guest completes it).
last1=$(grep -o 'seq=[0-9]* ' "$T/out1" | tail -1 | cut -d= -f2 | tr -d ' ')
ok 'wait_for "$T/out2" "seq=$((last1 + 20)) " 30' "restored guest runs 20 more lines"
kill -TERM $pid2
wait_exit $pid2 20

# check_stream OUT1 OUT2: what the first process printed, then the restored
# one, as one stream of whole progress lines (the restored process is
# killed, maybe in the middle of its last line; the first one's last line
# is completed by the restored guest) -> $T/check: lines, and how often the
# numbering skipped, the TSC went back or the self-check failed; the lines
# where the TSC went back go to $T/back
check_stream() {
	cat "$1" "$2" | tr -d '\r' | grep -E '^memwalk: seq=[0-9]+ tsc=[0-9]+ dirtied=[0-9]+ errors=[0-9]+$' >"$T/all"
	rm -f "$T/back"
	awk '
	{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
	NR > 1 && v["seq"] != last_seq + 1 { bad_seq++ }
	NR > 1 && v["tsc"] + 0 < last_tsc + 0 { bad_tsc++; print "# TSC back: " last_line " -> " $0 >back }
	v["errors"] != 0 { bad_err++ }
	{ last_seq = v["seq"]; last_tsc = v["tsc"]; last_line = $0 }
	END { printf "lines=%d bad_seq=%d bad_tsc=%d bad_err=%d\n", NR, bad_seq, bad_tsc, bad_err }
	' back="$T/back" "$T/all" >"$T/check"
	diag "$(cat "$T/check")"
	if [ -s "$T/back" ]; then
		cat "$T/back"
		tail -c 80 "$1" | od -c | sed 's/^/# out1 ends: /'
		head -c 80 "$2" | od -c | sed 's/^/# out2 starts: /'
	fi
}
check_stream "$T/out1" "$T/out2"
ok 'grep -q "bad_seq=0 " "$T/check"' "progress numbering continues exactly across the restore"
ok 'grep -q "bad_tsc=0 " "$T/check"' "TSC never goes backwards"
ok 'grep -q "bad_err=0$" "$T/check"' "self-check: 0 errors before and after"
ok '[ "$(wc -l <"$T/all")" -ge 40 ]' "enough lines checked"

# Saved within a second of the VM's start and restored at once: KVM takes a
# restored TSC within a second of a new vCPU's for a synchronisation of
# vCPUs and keeps its own (smaller) one, unless the backend sets the offset.
"$HR" run --kernel "$GUESTS/memwalk.elf" --memory 64M --name snap2 \
	--append "rate=100 wss=1M interval_ms=20" --snapshot "$T/quick" >"$T/q1" 2>"$T/qerr1" &
qpid=$!
on_exit "kill -9 $qpid 2>/dev/null"
wait_for "$T/q1" "seq=3 " 30 && kill -USR2 $qpid
wait_exit $qpid 30
"$HR" restore "$T/quick" >"$T/q2" 2>"$T/qerr2" &
qpid2=$!
on_exit "kill -9 $qpid2 2>/dev/null"
last1=$(tr -d '\r' <"$T/q1" | grep -o 'seq=[0-9]* ' | tail -1 | cut -d= -f2 | tr -d ' ')
wait_for "$T/q2" "seq=$((last1 + 5)) " 30
kill -TERM $qpid2
wait_exit $qpid2 20
check_stream "$T/q1" "$T/q2"
ok 'grep -q "bad_seq=0 bad_tsc=0 bad_err=0" "$T/check" && [ "$(wc -l <"$T/all")" -ge 6 ]' \
	"a snapshot taken early and restored at once: the TSC goes on from the saved value"

# Damaged files: each refused with a clear message and exit 65 (EX_DATAERR),
# not a crash and not a sanitizer's exit status (a leak on the refusal path
# turns 65 into LeakSanitizer's status under make check-sanitize builds).
refuse() { # FILE PATTERN
	"$HR" restore "$1" --timeout 5 >/dev/null 2>"$T/rerr"; r=$?
	[ $r -eq 65 ] || diag "restore $(basename "$1"): exit $r, expected 65"
	[ $r -eq 65 ] && grep -qiE "$2" "$T/rerr"
}
cp "$T/snap" "$T/corrupt"
printf '\377' | dd of="$T/corrupt" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
ok 'refuse "$T/corrupt" "checksum|corrupt"' "a snapshot with one corrupt byte is refused"
head -c $((size - 100)) "$T/snap" >"$T/trunc"
ok 'refuse "$T/trunc" "truncated|corrupt"' "a truncated snapshot is refused"
cp "$T/snap" "$T/version"
printf '\011' | dd of="$T/version" bs=1 seek=8 conv=notrunc 2>/dev/null
ok 'refuse "$T/version" "version"' "a snapshot of another format version is refused"
: >"$T/empty"
ok 'refuse "$T/empty" "corrupt|truncated|snapshot"' "an empty file is refused"
done_testing
