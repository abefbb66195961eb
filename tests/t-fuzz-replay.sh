#!/bin/sh
# Every committed fuzz input (tests/fuzz/corpus/TARGET: seeds from the
# encoders; tests/fuzz/regress/TARGET: inputs that once crashed) through its
# target built without libFuzzer (tests/fuzz/README.md).  One ok per target.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
targets="frames staging snapshot control handshake witness envelope"
plan $(echo $targets | wc -w)
for t in $targets; do
	bin="$top_builddir/tests/fuzz/fz-$t"
	dirs=
	for d in corpus regress; do
		[ -d "$top_srcdir/tests/fuzz/$d/$t" ] && dirs="$dirs $top_srcdir/tests/fuzz/$d/$t"
	done
	if [ -z "$dirs" ]; then
		ok false "fz-$t: no corpus in tests/fuzz/corpus/$t"
		continue
	fi
	# the targets log every refusal on stderr: keep it for a failure only
	out=$("$bin" $dirs 2>"$T/$t.err")
	rc=$?
	[ $rc -eq 0 ] || tail -n 20 "$T/$t.err" | sed 's/^/# /'
	ok "[ $rc -eq 0 ]" "fz-$t: ${out#*: }"
done
done_testing
