# nested-summary.sh - sourced by tests/linux/check-linux.sh and
# tests/xen/check-xen.sh: split a nested test host's console log into one
# log per test and judge each.
#
# nested_summary OUT TEST...: OUT/console.log holds, per test, its output
# between "=== BEGIN TEST" and "=== END TEST rc=N" (the serial console ends
# its lines with CR LF).  Writes OUT/NAME.log per test, prints PASS, SKIP or
# FAIL per test (with its failing points), and returns 0 only if every test
# ran to its end, passed its whole plan and none skipped (every resource is
# in the image: a skip is a failure of the image).  OUT/boots (if there):
# one line per boot of the host that did not run to its end, printed first;
# a RETRY line is a proven emulator freeze booted again, any other
# (FROZEN: no boot left, STOPPED: not proven) fails the run.
nested_summary() {
	_out=$1
	shift
	_fail=0
	if [ -s "$_out/boots" ]; then
		cat "$_out/boots"
		grep -qv "^RETRY: " "$_out/boots" && _fail=1
	fi
	for t in "$@"; do
		n=${t##*/}
		tr -d '\r' <"$_out/console.log" |
			awk -v t="$t" '$0 == "=== BEGIN " t {on = 1; next} on && index($0, "=== END " t " ") == 1 {print; on = 0} on' \
				>"$_out/$n.log"
		end=$(grep "^=== END " "$_out/$n.log" | sed 's/.* rc=//')
		nok=$(grep -c "^ok " "$_out/$n.log")
		nnot=$(grep -c "^not ok " "$_out/$n.log")
		plan=$(grep -m1 -E "^1\.\.[0-9]+" "$_out/$n.log")
		if [ "$end" = 0 ] && [ "${plan%% *}" = "1..0" ]; then
			echo "SKIP: $t (${plan#*SKIP })"
			_fail=1
		elif [ "$end" = 0 ] && [ "$nnot" = 0 ] && [ -n "$plan" ] && [ "1..$nok" = "${plan%% *}" ]; then
			echo "PASS: $t ($nok)"
		else
			echo "FAIL: $t (ok $nok, not ok $nnot, plan ${plan:-none}, exit ${end:-none})"
			grep -E "^not ok|^# " "$_out/$n.log" | head -30 | sed 's/^/    /'
			_fail=1
		fi
	done
	return $_fail
}
