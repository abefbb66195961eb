#!/bin/bash
# b-xen-summary.sh OUT - the table of `make bench-xen`: the "# RESULT"
# lines that bench/b-xen-hr.sh and bench/b-xen-remus.sh printed in dom0 of
# the nested Xen host (OUT/NAME.log, split from OUT/console.log), with what
# each figure means.
OUT=${1:-tests/xen/out}
hr=$OUT/b-xen-hr.sh.log
hp=$OUT/b-xen-hr-plain.sh.log
rm=$OUT/b-xen-remus.sh.log
res() { [ -r "$1" ] && tr -d '\r' <"$1" | sed -n 's/^# RESULT //p'; }
cat <<'EOT'
== bench-xen: hareplicate vs xl remus, same PVH domU (HRCOUNT every 100 ms),
   same nested Xen 4.17 host under QEMU TCG (slow: compare, don't quote)
EOT
echo "-- hareplicate (b-xen-hr.sh: two hareplicated in dom0, loopback, TLS)"
res "$hr" | sed 's/^/   /'
[ -n "$(res "$hr")" ] || echo "   (no figures: see $hr)"
if [ -r "$hp" ]; then
	echo "-- hareplicate over plain TCP (b-xen-hr-plain.sh: --insecure, as remus's link)"
	res "$hp" | sed 's/^/   /'
	[ -n "$(res "$hp")" ] || echo "   (no figures: see $hp)"
fi
echo "-- xl remus (b-xen-remus.sh: xl remus -> xl migrate-receive -r in the same dom0)"
res "$rm" | sed 's/^/   /'
[ -n "$(res "$rm")" ] || echo "   (no figures: see $rm)"
cat <<'EOT'
-- what the numbers mean (all times: dom0's clock, lines stamped as read by
   bench/b-stamp; the measured window starts once the counter reached 30)
   hr epochs: A's STATE-DIR/hrxt.epochs over the window: interval = start to
     start of consecutive epochs, pause = guest stopped (cooperative suspend
     to resume), ack = until B acknowledged the epoch's commit.
   remus checkpoints: xl -vvv remus's libxl/libxc lines over the window:
     interval = one "issuing ... suspend request" to the next (-i 50 is the
     sleep libxl adds after each commit); pause = suspend request to
     "Checkpointed save: N/N 100%" (dirty pages written); libxc resumes the
     guest right after without a log line, so it is a lower bound.
   guest progress: counter lines per second seen during the window (the
     guest prints one per 100 ms of its own running time: 10/s unprotected);
     it shows how much of the time the guest really ran.
   console line gaps: time between consecutive counter lines as stamped.
     hareplicate releases output per committed epoch, in bursts (p50 0 ms:
     lines of one burst are read together); xl remus (-n, no buffering)
     lets each line out as printed.
   failover: from the kill of the primary side (SIGKILL of A's daemon and
     worker, resp. of xl remus; then xl destroy of the primary domain) to
     the first counter line beyond the last one out before the kill.
     Both fail over when the stream ends (here at once: one dom0, the
     kernel closes the killed side's socket/pipe); hareplicate's
     --failover-timeout (5000 ms) only bounds a silent stream, e.g. a
     partitioned or frozen primary, and played no part.  The first new line
     may be output of the last committed epoch that B releases; the 10th
     new line (~1 s of the guest's own time later) was surely produced by
     the backup's copy.  With remus, lines the primary printed after its last checkpoint
     are lost or repeated (no output buffering); hareplicate's console is
     gap-free and never contradicted (checked by t-xen-protect.sh).
EOT
