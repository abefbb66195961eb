#!/bin/bash
# Snapshot and restore of a running Linux guest: `kill -USR2` writes a
# snapshot and ends the run; `hareplicate restore` goes on from it.  The two
# consoles together are the heartbeat whole (a line the snapshot cut in two
# is completed by the restored guest), and the guest's uptime never goes back.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/linux/lib-linux.sh"
need_kvm
need_linux
plan 5
"$HR" run --kernel "$KERNEL" --initrd "$INITRD" --memory 256M --snapshot "$T/snap" \
	--append "console=ttyS0 loglevel=4 hb_sleep=0.1" >"$T/out1" 2>"$T/err1" &
pid=$!
on_exit "kill -9 $pid 2>/dev/null"
ok 'wait_hb "$T/out1" 10 "$BOOT_S"' "the guest boots and beats (hb 10)"
kill -USR2 "$pid"
wait_exit "$pid" 120
ok '[ "$rc" = 0 ] && [ -s "$T/snap" ]' "SIGUSR2: snapshot written, run ends with status 0 (rc=$rc)"
before=$(last_hb "$T/out1")
"$HR" restore "$T/snap" >"$T/out2" 2>"$T/err2" &
pid2=$!
on_exit "kill -9 $pid2 2>/dev/null"
ok 'wait_hb "$T/out2" $((before + 10)) 120' "restored, the guest goes on (hb $before -> $((before + 10)))"
kill "$pid2"
wait_exit "$pid2" 30
cat "$T/out1" "$T/out2" >"$T/all"
r=$(hb_check "$T/all")
ok 'case "$r" in "hb 1.."*) true ;; *) false ;; esac' "both consoles together: heartbeat whole, in order, uptime never backwards ($r)"
tail -c 40 "$T/out1" | od -c | tail -3 | sed 's/^/# out1 ends: /'
ok '! grep -q "^hb 1 " "$T/out2"' "the restored guest did not boot again"
done_testing
