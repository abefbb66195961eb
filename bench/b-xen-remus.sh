#!/bin/bash
# b-xen-remus.sh - Xen's own checkpointing HA, `xl remus`, on the domU of
# t-xen-protect.sh (PVH, the HRCOUNT counter every 100 ms), in dom0 of the
# nested Xen host; `make bench-xen` runs it after bench/b-xen-hr.sh in the
# same boot and prints both side by side (bench/b-xen-summary.sh).
#
# Primary and backup are both in this dom0: `xl remus -s FAKE-SSH hrxt
# localhost` runs "FAKE-SSH localhost xl migrate-receive -r -e", and the fake
# ssh drops the host name and runs the receiver here (domain hrxt--incoming).
# xenconsoled, started here, drains every domain's console into a log file;
# bench/b-stamp follows those files and stamps each line with dom0's clock
# in ms (xenconsoled's own stamps are whole seconds).  xl -vvv's libxl/libxc
# lines are stamped the same way and give per-checkpoint times.  Then the
# primary side dies: SIGKILL of the xl remus process and of its
# libxl-save-helper child (a crashed host loses both; the helper alone keeps
# the stream open), and `xl destroy hrxt`; the receiver sees its stream end
# and resumes the last checkpoint (libxl's "Remus failover").
#
# Environment: HR_REMUS_MS (xl remus -i, 50), HR_REMUS_RUN_S (seconds of
# checkpointing measured, 60), HR_REMUS_FLAGS (more xl remus options, default
# "-F -n": Debian's libxl is built without libnl, so without network
# buffering, and refuses Remus unless -n, which only -F allows; this domU has
# no vif and no disk, so nothing is lost by it), HR_XEN_BOOT_S (300),
# HR_REMUS_DEBUG=1 (print the stamped xl log).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/xen/lib-xen.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root"
[ -e /proc/xen/privcmd ] || [ -e /dev/xen/privcmd ] || skip_all "not in a Xen dom0 (make bench-xen)"
CFG=${HR_XEN_CFG:-/guest/hrxt.cfg}
MS=${HR_REMUS_MS:-50}
RUN_S=${HR_REMUS_RUN_S:-60}
FLAGS=${HR_REMUS_FLAGS:--F -n}
BOOT_S=${HR_XEN_BOOT_S:-300}
STAMP=$top_builddir/bench/b-stamp
[ -r "$CFG" ] || skip_all "no domU config $CFG"
[ -x "$STAMP" ] || skip_all "bench/b-stamp not in the image (HR_XEN_BINS=bench/b-stamp)"
command -v xenconsoled >/dev/null || skip_all "no xenconsoled in the image"
XBIN=$(dirname "$(command -v xl)")
[ -x "$XBIN/libxl-save-helper" ] || skip_all "no libxl-save-helper in the image"
plan 6

# process substitution (the stamped logs) needs /dev/fd, which dom0's
# devtmpfs lacks
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
mkdir -p "$T/con"
xenconsoled -i --log=guest --log-dir="$T/con" --timestamp=guest >"$T/xenconsoled.log" 2>&1 &
cpid=$!
"$STAMP" -f "$T/con/guest-hrxt.log" >"$T/pcon" &
spids="$!"
"$STAMP" -f "$T/con/guest-hrxt--incoming.log" >"$T/bcon" &
spids="$spids $!"
on_exit "xl destroy hrxt 2>/dev/null; xl destroy hrxt--incoming 2>/dev/null; kill -9 \$rpid \$helpers $cpid $spids 2>/dev/null"
# the fake ssh: "FAKE localhost xl migrate-receive -r -e" -> the receiver
# here, verbose, its stderr stamped into recv.log
export HR_RECV_LOG=$T/recv.log STAMP
cat >"$T/fake-ssh" <<'EOF'
#!/bin/bash
shift
[ "$1" = xl ] && shift
exec xl -vvv "$@" 2> >("$STAMP" >"$HR_RECV_LOG")
EOF
chmod +x "$T/fake-ssh"

xl create "$CFG" >"$T/xl.out" 2>&1 || { sed 's/^/# xl: /' "$T/xl.out"; echo "Bail out! xl create"; exit 1; }
ok 'wait_count "$T/pcon" 30 "$BOOT_S"' "the domU boots; xenconsoled logs its counter (30)"

t_start=$(now_ms)
# shellcheck disable=SC2086
xl -vvv remus $FLAGS -i "$MS" -s "$T/fake-ssh" hrxt localhost > >("$STAMP" >"$T/remus.log") 2>&1 &
rpid=$!
diag "xl -vvv remus $FLAGS -i $MS -s FAKE-SSH hrxt localhost: pid $rpid"
# the receiver's domain exists from the stream's start; the first
# checkpoint is in at the receiver's first "All records processed"
ok 'wait_for "$T/recv.log" "All records processed" 300' "xl remus: the first checkpoint reached the receiver"
t_first=$(now_ms)
diag "first checkpoint in after $((t_first - t_start)) ms"
xl list 2>&1 | sed 's/^/# xl: /'
end=$(($(date +%s) + RUN_S))
while [ "$(date +%s)" -lt "$end" ] && kill -0 $rpid 2>/dev/null; do sleep 0.5; done
ok 'kill -0 $rpid 2>/dev/null' "xl remus still checkpointing after $RUN_S s"
[ -n "${HR_REMUS_DEBUG:-}" ] && sed -n '1,300p' "$T/remus.log" | grep -v "Frames iteration 0" | sed 's/^/# remus: /'

before=$(last_count "$T/pcon")
helpers=$(pids_of libxl-save-helper "$rpid" | tr "\n" " ")
t_kill=$(now_ms)
kill -9 $rpid $helpers
xl destroy hrxt
diag "SIGKILL of xl remus ($rpid) and its save helper ($helpers), xl destroy hrxt, at HRCOUNT $before"
ok 'wait_count "$T/bcon" $((before + 1)) 120' "the backup domain goes on counting after HRCOUNT $before"
t_seen=$(now_ms)
xl list 2>&1 | sed 's/^/# xl: /'
grep -i -E "failover|error|fail" "$T/recv.log" | head -8 | sed 's/^/# recv: /'
# both sides are in one dom0 here: libxl's rename of hrxt--incoming to hrxt
# can race the destruction of the primary hrxt (it then keeps its name)
ok 'xl list | grep -q -E "^hrxt(--incoming)? .* r-----|^hrxt(--incoming)? .* -b----"' "the resumed backup runs ($(xl list | awk '/^hrxt/ { print $1 }'))"
ok '[ "$(cat "$T"/con/guest-*.log | tr -d "\000" | grep -c "HRCOUNT-START")" -le 1 ]' "the backup did not boot the domU again"

# ---- figures
# per checkpoint (the first, the end of the initial live copy, excepted):
# S = "issuing ... suspend request", C = "Checkpointed save: N/N 100%" (the
# dirty pages written; libxc resumes the guest right after, unlogged)
awk '/issuing .* suspend request/ { s = $1; n++ }
	/Checkpointed save: .* 100%/ && s { if (n > 1) print s, $1 - s, $1; s = 0 }' "$T/remus.log" >"$T/ckpt"
echo "# RESULT remus: xl remus $FLAGS -i $MS, $(wc -l <"$T/ckpt") checkpoints in $(((t_kill - t_first) / 1000)) s"
awk '{ if (p) print $1 - p; p = $1 }' "$T/ckpt" | pct "remus checkpoint interval (suspend request to the next):" | sed 's/^/# RESULT /'
echo
awk '{ print $2 }' "$T/ckpt" | pct "remus pause (suspend request to pages written; resume not logged, so a lower bound):" | sed 's/^/# RESULT /'
echo
sed -n 's/.*Checkpointed save: \([0-9]*\)\/.* 100%.*/\1/p' "$T/remus.log" | tail -n +2 | sort -n |
	awk '{ v[NR] = $1 } END { if (NR) printf "# RESULT remus dirty pages per checkpoint p50 %d p99 %d\n", v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.999)] }'
awk -v a="$t_first" -v b="$t_kill" '$1 >= a && $1 <= b && $(NF - 1) == "HRCOUNT" { if (p) print $1 - p; p = $1 }' "$T/pcon" |
	pct "remus console line gaps on the primary (guest period 100 ms):" | sed 's/^/# RESULT /'
echo
first_any=$(awk '$(NF - 1) == "HRCOUNT" { print $1, $NF; exit }' "$T/bcon")
awk -v a="$t_first" -v b="$t_kill" '$1 >= a && $1 <= b && $(NF - 1) == "HRCOUNT" { n++ } END {
	printf "# RESULT remus guest progress: %.1f counter lines/s on the primary in the window (10/s unprotected)\n", n * 1000 / (b - a) }' "$T/pcon"
# the last line out before the kill, by its stamp (lines released between
# the sample above and the kill count as before it)
before=$(awk -v k="$t_kill" '$1 <= k && $(NF - 1) == "HRCOUNT" { if ($NF + 0 > m) m = $NF + 0 } END { print m + 0 }' "$T/pcon")
wait_count "$T/bcon" $((before + 10)) 60
first_new=$(awk -v b="$before" '$(NF - 1) == "HRCOUNT" && $NF > b { print $1, $NF; exit }' "$T/bcon")
# since_kill "MS N": "+D ms (HRCOUNT N)" after the kill, or "never"
since_kill() { [ -n "$1" ] && echo "+$((${1%% *} - t_kill)) ms (HRCOUNT ${1#* })" || echo never; }
echo "# RESULT remus failover: the backup's first counter line $(since_kill "$first_any") after the kill; first new line (beyond the primary's last, HRCOUNT $before) $(since_kill "$first_new")"
tenth=$(awk -v b="$before" '$(NF - 1) == "HRCOUNT" && $NF >= b + 10 { print $1, $NF; exit }' "$T/bcon")
echo "# RESULT remus failover, 10th new line (HRCOUNT $((before + 10)): ~1 s of the guest's own time beyond the last line out, so surely run by the backup) $([ -n "$tenth" ] && echo "+$((${tenth%% *} - t_kill)) ms" || echo never) after the kill"
[ -n "$first_new" ] && echo "# RESULT remus console after failover: the backup's first line HRCOUNT ${first_any#* }, the primary's last HRCOUNT $before: $((${first_any#* } - before - 1)) line(s) missing (negative: repeated)"
grep -h -E "Remus Failover|failover" "$T/recv.log" | head -2 | awk -v k="$t_kill" '{ printf "# RESULT remus receiver: \"%s\" +%d ms after the kill\n", substr($0, index($0, $2)), $1 - k }'
done_testing
