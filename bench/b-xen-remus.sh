#!/bin/bash
# b-xen-remus.sh - Xen's own checkpointing HA, `xl remus`, on the domU of
# t-xen-protect.sh (PVH, the HRCOUNT counter), in dom0 of the nested Xen host
# of `make check-xen` (`make bench-xen` runs it after t-xen-protect.sh, in
# the same boot, and prints both side by side).
#
# Primary and backup are both in this dom0: `xl remus -s FAKE-SSH hrxt
# localhost` runs FAKE-SSH localhost xl migrate-receive -r -e, which here
# just drops the host name and runs the receiver locally (hrxt--incoming).
# xenconsoled (started here, with --timestamp) drains and logs every
# domain's console, so the counter lines carry dom0 times.  Then the primary
# side dies: SIGKILL of the xl remus process and `xl destroy hrxt`; the
# receiver sees its stream break and resumes its last checkpoint.
#
# Environment: HR_REMUS_MS (xl remus -i, 50), HR_REMUS_RUN_S (seconds of
# checkpointing measured, 60), HR_REMUS_FLAGS (more xl remus options; the
# default "-F -n": Debian's libxl has no network buffering, libnl-less, and
# refuses without -n, which is unsafe, hence -F; the domU has no vif, no
# disk, so nothing is lost by it), HR_XEN_BOOT_S (300).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root"
[ -e /proc/xen/privcmd ] || [ -e /dev/xen/privcmd ] || skip_all "not in a Xen dom0 (make bench-xen)"
CFG=${HR_XEN_CFG:-/guest/hrxt.cfg}
MS=${HR_REMUS_MS:-50}
RUN_S=${HR_REMUS_RUN_S:-60}
FLAGS=${HR_REMUS_FLAGS:--F -n}
BOOT_S=${HR_XEN_BOOT_S:-300}
[ -r "$CFG" ] || skip_all "no domU config $CFG"
command -v xenconsoled >/dev/null || skip_all "no xenconsoled in the image"
XBIN=$(dirname "$(command -v xl)")
[ -x "$XBIN/libxl-save-helper" ] || skip_all "no libxl-save-helper in the image"
plan 5

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
# stamp: prefix every line with dom0's wall clock in ms
stamp() { while IFS= read -r l; do echo "$(now_ms) $l"; done; }
# last_count FILE: the highest "HRCOUNT n" of a xenconsoled log (its lines
# start "[YYYY-MM-DD HH:MM:SS] ": whole seconds, so the times measured here
# come from polling the file, every ~20 ms, as b-xen-hr.sh does)
last_count() {
	[ -r "$1" ] || { echo 0; return; }
	tr -d '\000\r' <"$1" | sed -n 's/^\[[^]]*\] //; s/^HRCOUNT \([0-9]*\)$/\1/p' | awk '{ if ($1 > m) m = $1 } END { print m + 0 }'
}
wait_count() { # FILE N SECONDS
	_end=$(($(date +%s) + $3))
	while [ "$(date +%s)" -lt "$_end" ]; do
		[ "$(last_count "$1")" -ge "$2" ] && return 0
		sleep 0.02
	done
	return 1
}
# pct LABEL: p50 and p99 (nearest rank) of the numbers on stdin
pct() {
	sort -n | awk -v l="$1" '{ v[NR] = $1 } END {
		if (!NR) { printf "%s: no samples", l; exit }
		printf "%s p50 %d ms p99 %d ms (%d samples)", l, v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.999)], NR }'
}

export TZ=UTC
mkdir -p "$T/con"
xenconsoled -i --log=guest --log-dir="$T/con" --timestamp=guest >"$T/xenconsoled.log" 2>&1 &
cpid=$!
on_exit "xl destroy hrxt 2>/dev/null; xl destroy hrxt--incoming 2>/dev/null; kill -9 \$rpid $cpid 2>/dev/null"
# the fake ssh: "FAKE localhost xl migrate-receive -r -e" -> the receiver
# here, verbose, its stderr stamped into recv.log
export HR_RECV_LOG=$T/recv.log
cat >"$T/fake-ssh" <<'EOF'
#!/bin/bash
shift
[ "$1" = xl ] && shift
stamp() { while IFS= read -r l; do echo "$((${EPOCHREALTIME/./} / 1000)) $l"; done; }
exec xl -vvv "$@" 2> >(stamp >"$HR_RECV_LOG")
EOF
chmod +x "$T/fake-ssh"

xl create "$CFG" >"$T/xl.out" 2>&1 || { sed 's/^/# xl: /' "$T/xl.out"; echo "Bail out! xl create"; exit 1; }
PLOG=$T/con/guest-hrxt.log
ok 'wait_count "$PLOG" 30 "$BOOT_S"' "the domU boots; xenconsoled logs its counter (30)"
xl list 2>&1 | sed 's/^/# xl: /'

t_start=$(now_ms)
# shellcheck disable=SC2086
xl -vvv remus $FLAGS -i "$MS" -s "$T/fake-ssh" hrxt localhost > >(stamp >"$T/remus.log") 2>&1 &
rpid=$!
diag "xl -vvv remus $FLAGS -i $MS -s FAKE-SSH hrxt localhost: pid $rpid"
# the backup exists once the first checkpoint is in: hrxt--incoming
ok 'wait_true 300 sh -c "xl list | grep -q \"^hrxt--incoming \""' "xl remus: the receiver built hrxt--incoming"
t_first=$(now_ms)
diag "first checkpoint in after $((t_first - t_start)) ms"
xl list 2>&1 | sed 's/^/# xl: /'
# RUN_S seconds of checkpoints measured, the console's line times sampled
: >"$T/times"
end=$(($(date +%s) + RUN_S))
prev=$(last_count "$PLOG")
while [ "$(date +%s)" -lt "$end" ] && kill -0 $rpid 2>/dev/null; do
	c=$(last_count "$PLOG")
	[ "$c" != "$prev" ] && echo "$(now_ms) $c" >>"$T/times" && prev=$c
	sleep 0.02
done
ok 'kill -0 $rpid 2>/dev/null' "xl remus still checkpointing after $RUN_S s"
t_end=$(now_ms)
[ -n "${HR_REMUS_DEBUG:-}" ] && sed -n '1,400p' "$T/remus.log" | sed 's/^/# remus: /'
diag "remus.log: $(wc -l <"$T/remus.log") lines; recv.log: $(wc -l <"$T/recv.log" 2>/dev/null) lines"
grep -v -E "libxl_event|libxl_aoutils|libxl_fork|xtl_logger" "$T/remus.log" | awk '{ $1 = ""; print }' | sort | uniq -c | sort -rn | head -40 | sed 's/^/# remus msgs: /'

before=$(last_count "$PLOG")
bid=$(xl domid hrxt--incoming 2>/dev/null)
t_kill=$(now_ms)
kill -9 $rpid
xl destroy hrxt
diag "SIGKILL of xl remus, xl destroy hrxt, at HRCOUNT $before (t=$((t_kill - t_start)) ms)"
BLOG=
for f in "$T"/con/guest-*.log; do [ "$f" = "$PLOG" ] || BLOG=$f; done
diag "backup console log: ${BLOG:-none} (domid $bid)"
# the first counter line of the backup (it may repeat lines the primary
# printed after the last checkpoint), then the first beyond $before
t_any=
_end=$(($(date +%s) + 120))
while [ "$(date +%s)" -lt "$_end" ]; do
	c=$(last_count "$BLOG")
	[ -z "$t_any" ] && [ "$c" -gt 0 ] && t_any=$(now_ms) && n_any=$c
	[ "$c" -gt "$before" ] && break
	sleep 0.02
done
t_new=$(now_ms)
ok '[ "$c" -gt "$before" ]' "the backup domain goes on counting after HRCOUNT $before (reached $c)"
xl list 2>&1 | sed 's/^/# xl: /'
tail -20 "$T/recv.log" | sed 's/^/# recv: /'
ok '[ "$(cat "$T"/con/guest-*.log | tr -d "\000" | grep -c "HRCOUNT-START")" -le 1 ]' "the backup did not boot the domU again"

# ---- figures
echo "# RESULT remus: xl remus $FLAGS -i $MS ($(((t_end - t_first) / 1000)) s measured)"
awk '{ if (p) print $1 - p; p = $1 }' "$T/times" | pct "remus console gaps (polled):" | sed 's/^/# RESULT /'
echo
echo "# RESULT remus failover: first backup line (HRCOUNT ${n_any:-none}) +$((${t_any:-$t_new} - t_kill)) ms, first new line (beyond HRCOUNT $before) +$((t_new - t_kill)) ms after the kill (polled)"
done_testing
