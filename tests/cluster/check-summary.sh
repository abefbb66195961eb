#!/bin/sh
# check-summary.sh TEST... - the verdict of `make check-cluster`, after
# automake's harness ran TEST... (a test that failed has already failed
# the target).  Prints PASS or SKIP per test, with the skip's reason, and
# exits 1 if any test skipped as a whole (its plan "1..0 # SKIP why") or
# left no result: the rule of check-linux and check-xen
# (tests/nested-summary.sh), where the resources are part of the target
# and a missing one is a failure of the install, not a reason to pass.
# Run from the build directory.
rc=0
for t in "$@"; do
	b=${t%.sh}
	res=$(sed -n 's/^:global-test-result: //p' "$b.trs" 2>/dev/null)
	case $res in
	PASS) echo "PASS: $t ($(grep -c '^:test-result: PASS' "$b.trs"))" ;;
	SKIP)
		echo "SKIP: $t ($(sed -n 's/^1\.\.0 *# *SKIP *//p' "$b.log" | head -1))"
		rc=1
		;;
	*)
		echo "FAIL: $t (${res:-no result in $b.trs})"
		rc=1
		;;
	esac
done
[ $rc = 0 ] || echo "check-cluster: FAIL: a skipped cluster test is a missing resource (quickstart.sh installs them; root and /dev/kvm are needed)" >&2
exit $rc
