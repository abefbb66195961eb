# shellcheck shell=bash
# freeze.sh - sourced by nested.sh: the evidence taken when the nested test
# host stops (its heartbeat silent), and the verdict drawn from it.
#
# freeze_evidence QEMU_PID QMP_SOCKET: prints (for the console log) QEMU's
# threads and their CPU times over 5 s (does QEMU spin or sleep?), QEMU's
# view of the emulated CPU (info status, cpus, registers, lapic, pic and the
# instructions at RIP, the VM stopped for it), RIP sampled over time (each
# sample taken with the VM stopped: a running TCG vCPU's registers are only
# written back at its exits), and one summary line
#   nested: EVIDENCE monitor=M qemu_cpu_ticks_5s=T vcpu_ticks_5s=V samples=N rips=D halted=H rip=R
# (M: QEMU's monitor answered at all; ticks of 1/100 s; D distinct RIPs among N answered samples; H the HLT
# flags seen, 0 and/or 1).  QEMU's vCPU thread is named "CPU 0/TCG".
#
# freeze_verdict LOG: from LOG's last EVIDENCE line, "stuck: WHY" if the
# emulated CPU is stuck (the monitor answers but the CPU no stop request, or stayed at one RIP
# through every sample: halted with no interrupt to wake it, or spinning
# there), "running: WHY" otherwise (the emulated CPU runs: the stop is in
# what runs on it).
_freeze_here=$(dirname "${BASH_SOURCE[0]}")
# thread CPU times: "TID NAME STATE TICKS" per thread of PID
_freeze_threads() {
	for _s in /proc/"$1"/task/*/stat; do
		_t=${_s%/stat}
		# the fields after "(comm)": state is 1st, utime 12th, stime 13th
		sed 's/.*) //' "$_s" 2>/dev/null |
			awk -v tid="${_t##*/}" -v name="$(tr ' ' _ <"$_t/comm" 2>/dev/null)" '{ print tid, name, $1, $12 + $13 }'
	done
}
_freeze_hmp() { timeout 20 python3 "$_freeze_here/qmp-hmp.py" "$@"; }
freeze_evidence() {
	_p=$1 _q=$2
	echo "nested: evidence at $(date -u +%T) UTC, QEMU pid ${_p:-unknown}; host load $(cut -d' ' -f1-3 /proc/loadavg)"
	[ -n "$_p" ] && [ -d "/proc/$_p" ] || { echo "nested: EVIDENCE none (no QEMU process)"; return 0; }
	echo "--- top -b -n1 -p $_p"
	top -b -n1 -p "$_p" 2>&1 | sed -n '/PID/,$p'
	_a=$(_freeze_threads "$_p")
	sleep 5
	_b=$(_freeze_threads "$_p")
	echo "--- QEMU's threads over 5 s: tid name state ticks_before ticks_after (1/100 s)"
	_sum=$(printf '%s\n--\n%s\n' "$_a" "$_b" | awk '
		$0 == "--" { second = 1; next }
		!second { t0[$1] = $4; next }
		{ d = $4 - t0[$1]; all += d; if ($2 ~ /^CPU_[0-9]+\/TCG/) v += d
		  printf "    %s %s %s %s %s\n", $1, $2, $3, t0[$1], $4 }
		END { printf "SUM %d %d\n", all, v }')
	echo "$_sum" | grep -v '^SUM'
	_cpu=$(echo "$_sum" | awk '/^SUM/ { print $2 }')
	_vcpu=$(echo "$_sum" | awk '/^SUM/ { print $3 }')
	echo "--- QEMU's monitor, the VM running"
	_mon=no
	_freeze_hmp "$_q" "info status" "info cpus" "info registers -a" && _mon=yes
	echo "--- QEMU's monitor, the VM stopped"
	_freeze_hmp "$_q" stop "info status" "info registers -a" "info lapic" "info pic" 'x/8i $pc' cont
	echo "--- RIP over time (VM stopped for each sample, 1 s apart)"
	_rips=
	for _i in 1 2 3 4 5 6; do
		_r=$(_freeze_hmp "$_q" stop "info registers" cont |
			awk '/^[ER]IP=/ { split($1, a, "="); rip = a[2]; for (i = 1; i <= NF; i++) if ($i ~ /^HLT=/) hlt = $i }
			     /^CR0=/ { cr3 = $3 } END { if (rip != "") print rip, hlt, cr3 }')
		echo "    sample $_i $(date -u +%T): ${_r:-no answer}"
		[ -n "$_r" ] && _rips="$_rips$_r
"
		sleep 1
	done
	_n=$(printf '%s' "$_rips" | grep -c .)
	_d=$(printf '%s' "$_rips" | awk '{ print $1 }' | sort -u | grep -c .)
	_h=$(printf '%s' "$_rips" | awk '{ sub(/^HLT=/, "", $2); print $2 }' | sort -u | tr '\n' , | sed 's/,$//')
	_r1=$(printf '%s' "$_rips" | awk 'NR == 1 { print $1 }')
	echo "nested: EVIDENCE monitor=$_mon qemu_cpu_ticks_5s=${_cpu:-?} vcpu_ticks_5s=${_vcpu:-?} samples=$_n rips=$_d halted=${_h:-none} rip=${_r1:-none}"
}
freeze_verdict() {
	tr -d '\r' <"$1" | grep '^nested: EVIDENCE ' | tail -1 | awk '
	{ for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
	END {
		if (!("samples" in v)) { print "running: no evidence"; exit }
		if (v["samples"] == 0 && v["monitor"] == "yes") { printf "stuck: the emulated CPU answered no stop request (QEMU %s ticks in 5 s)\n", v["qemu_cpu_ticks_5s"]; exit }
		if (v["samples"] >= 3 && v["rips"] == 1) {
			printf "stuck: the emulated CPU stayed at RIP %s through %d samples (HLT=%s; vCPU thread %s ticks in 5 s)\n",
				v["rip"], v["samples"], v["halted"], v["vcpu_ticks_5s"]; exit
		}
		printf "running: the emulated CPU moved (%d RIPs in %d samples, HLT=%s; vCPU thread %s ticks in 5 s)\n",
			v["rips"], v["samples"], v["halted"], v["vcpu_ticks_5s"]
	}'
}
