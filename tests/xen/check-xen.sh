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
TESTS=${CHECK_XEN_TESTS:-"tests/xen/t-xen-refusals tests/xen/t-xen-backend tests/xen/t-xen-protect.sh tests/t-engine tests/t-migrate-engine"}
if [ -z "${CHECK_XEN_SUMMARY_ONLY:-}" ]; then
	"$top_srcdir/tests/xen/mkinitramfs.sh" "$OUT" || exit 1
	(cd "$OUT/dom0" && find . | cpio -o -H newc --quiet) >"$OUT/dom0.cpio"
	t0=$(date +%s)
	"$top_srcdir/tests/xen/nested.sh" "$OUT" "$OUT/console.log" $TESTS
	echo "check-xen: nested Xen host ran $(($(date +%s) - t0)) s"
fi
. "$top_srcdir/tests/nested-summary.sh"
# shellcheck disable=SC2086
nested_summary "$OUT" $TESTS
