#!/bin/bash
# check-xen.sh - `make check-xen`: build the nested Xen host, boot it once
# under QEMU TCG and run the Xen tests in its dom0; print each test's TAP
# result and exit 0 only if every test ran to its end and passed.  Logs in
# tests/xen/out/.  CHECK_XEN_TESTS: the list; CHECK_XEN_SUMMARY_ONLY=1:
# summarise the last run's console.log again.
set -u
: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
export top_builddir top_srcdir
OUT=$top_builddir/tests/xen/out
mkdir -p "$OUT"
command -v qemu-system-x86_64 >/dev/null || { echo "check-xen: qemu-system-x86_64 not installed"; exit 77; }
TESTS=${CHECK_XEN_TESTS:-"tests/xen/t-xen-refusals tests/xen/t-xen-backend tests/xen/t-xen-protect.sh"}
if [ -z "${CHECK_XEN_SUMMARY_ONLY:-}" ]; then
	"$top_srcdir/tests/xen/mkinitramfs.sh" "$OUT" || exit 1
	(cd "$OUT/dom0" && find . | cpio -o -H newc --quiet) >"$OUT/dom0.cpio"
	t0=$(date +%s)
	"$top_srcdir/tests/xen/nested.sh" "$OUT" "$OUT/console.log" $TESTS
	echo "check-xen: nested Xen host ran $(($(date +%s) - t0)) s"
fi
fail=0
for t in $TESTS; do
	n=${t##*/}
	tr -d '\r' <"$OUT/console.log" |
		awk -v t="$t" '$0 == "=== BEGIN " t {on = 1; next} on && index($0, "=== END " t " ") == 1 {print; on = 0} on' \
			>"$OUT/$n.log"
	end=$(grep "^=== END " "$OUT/$n.log" | sed 's/.* rc=//')
	nok=$(grep -c "^ok " "$OUT/$n.log")
	nnot=$(grep -c "^not ok " "$OUT/$n.log")
	plan=$(grep -m1 -E "^1\.\.[0-9]+" "$OUT/$n.log")
	if [ "$end" = 0 ] && [ "${plan%% *}" = "1..0" ]; then
		echo "SKIP: $t (${plan#*SKIP })"
		fail=1 # every resource is in the image: a skip is a failure of the image
	elif [ "$end" = 0 ] && [ "$nnot" = 0 ] && [ -n "$plan" ] && [ "1..$nok" = "${plan%% *}" ]; then
		echo "PASS: $t ($nok)"
	else
		echo "FAIL: $t (ok $nok, not ok $nnot, plan ${plan:-none}, exit ${end:-none})"
		grep -E "^not ok|^# " "$OUT/$n.log" | head -30 | sed 's/^/    /'
		fail=1
	fi
done
exit $fail
