# lib-xen.sh - shell helpers shared by the scripts that run in dom0 of the
# nested Xen host (tests/xen/t-xen-protect.sh, bench/b-xen-*.sh), sourced
# after tests/lib.sh.  The domU prints "HRCOUNT n" lines on its console;
# the helpers read such a console, raw or stamped by bench/b-stamp
# ("MS [DATE TIME] HRCOUNT n"): the counter is the last two fields.

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# last_count FILE: the highest HRCOUNT n of FILE (0 if none or no file)
last_count() {
	[ -r "$1" ] || { echo 0; return; }
	tr -d '\000\r' <"$1" |
		awk '$NF ~ /^[0-9]+$/ && $(NF - 1) == "HRCOUNT" { if ($NF + 0 > m) m = $NF + 0 } END { print m + 0 }'
}

# wait_count FILE N SECONDS: until HRCOUNT N is in FILE
wait_count() {
	_end=$(($(date +%s) + $3))
	while [ "$(date +%s)" -lt "$_end" ]; do
		[ "$(last_count "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# counter_check FILE: every "HRCOUNT n" line of a raw console, n = 1..max
# present once and in order; prints "HRCOUNT 1..max" or what is wrong
counter_check() {
	tr -d '\000\r' <"$1" | awk '
	/^HRCOUNT [0-9]+$/ {
		n = $2 + 0
		if (n != last + 1) { print "HRCOUNT " last " followed by " n; bad = 1; exit }
		last = n; next
	}
	/HRCOUNT [0-9]/ { print "damaged counter line: " $0; bad = 1; exit }
	END { if (!bad) { if (last == 0) { print "no counter"; exit 1 } ; print "HRCOUNT 1.." last; exit 0 } ; exit 1 }'
}

# pct LABEL: p50, p99 (nearest rank) and max of the numbers (ms) on stdin
pct() {
	sort -n | awk -v l="$1" '{ v[NR] = $1 } END {
		if (!NR) { printf "%s: no samples", l; exit }
		printf "%s p50 %d ms p99 %d ms max %d ms (%d samples)", l, v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.999)], v[NR], NR }'
}

# pct_us LABEL FIELD FILE [SKIP]: p50/p99 (nearest rank) of FIELD=us (or a
# count: FIELD not ending in _us) over the epoch lines of a
# STATE-DIR/VM.epochs, its first SKIP lines left out
pct_us() {
	sed -n "s/.*\b$2=\([0-9]*\).*/\1/p" "$3" | tail -n +"$((${4:-0} + 1))" | sort -n | awk -v l="$1" -v f="$2" '{ v[NR] = $1 } END {
		if (!NR) { printf "%s: no samples", l; exit }
		s = f ~ /_us$/ ? 1000 : 1; u = f ~ /_us$/ ? " ms" : ""
		printf "%s p50 %d%s p99 %d%s (%d epochs)", l, v[int((NR + 1) / 2)] / s, u, v[int(NR * 0.99 + 0.999)] / s, u, NR }'
}

# pids_of PATTERN [PPID]: the processes whose command line contains
# PATTERN (children of PPID only, if given); dom0's image has no pgrep
pids_of() {
	for _d in /proc/[0-9]*; do
		[ -r "$_d/cmdline" ] || continue
		tr '\000' ' ' <"$_d/cmdline" 2>/dev/null | grep -q -e "$1" || continue
		[ -z "${2:-}" ] || [ "$(awk '{ print $4 }' "$_d/stat" 2>/dev/null)" = "$2" ] || continue
		echo "${_d#/proc/}"
	done
}
