#!/bin/bash
# b-xen-summary.sh OUT - the table of `make bench-xen`: the "# RESULT"
# lines that bench/b-xen-hr.sh and bench/b-xen-remus.sh printed in dom0 of
# the nested Xen host (OUT/NAME.log, split from OUT/console.log), with what
# each figure means.
OUT=${1:-tests/xen/out}
hr=$OUT/b-xen-hr.sh.log
rm=$OUT/b-xen-remus.sh.log
res() { [ -r "$1" ] && tr -d '\r' <"$1" | sed -n 's/^# RESULT //p'; }
cat <<'EOT'
== bench-xen: hareplicate vs xl remus, same PVH domU (HRCOUNT every 100 ms),
   same nested Xen 4.17 host under QEMU TCG (slow: compare, don't quote)
EOT
echo "-- hareplicate (b-xen-hr.sh: two hareplicated in dom0, loopback, TLS)"
res "$hr" | sed 's/^/   /'
[ -n "$(res "$hr")" ] || echo "   (no figures: see $hr)"
echo "-- xl remus (b-xen-remus.sh: xl remus -> xl migrate-receive -r in the same dom0)"
res "$rm" | sed 's/^/   /'
[ -n "$(res "$rm")" ] || echo "   (no figures: see $rm)"
cat <<'EOT'
-- what the numbers mean
   hr epochs: from A's STATE-DIR/hrxt.epochs (first epoch excepted): interval =
     start to start of consecutive checkpoints, pause = guest stopped (suspend
     to resume), ack = B's commit acknowledgement.
   remus checkpoints: from xl -vvv remus's libxl debug lines, stamped by dom0's
     clock as they were read: interval = one suspend request to the next,
     pause = suspend request to the checkpoint's "resumed" mark (see
     b-xen-remus.sh).  -i is the sleep libxl takes between checkpoints.
   console gaps: time between counter lines (guest period 100 ms); a
     checkpoint pause or a release burst widens a gap.
   failover: from the kill of the primary side (SIGKILL of its daemon/xl
     remus process + xl destroy of the primary domain) to the first counter
     line beyond the last one seen before the kill.  hareplicate's includes
     B's --failover-timeout (silence needed before promoting); remus has
     none: the receiver fails over when its stream breaks.  hareplicate
     releases console output only after the epoch is committed; xl remus
     (without network/console buffering) lets the primary's output out
     unbuffered, so the backup may repeat lines the primary already printed.
EOT
