#!/bin/sh
# run.sh SRCDIR BUILDDIR - `make fuzz` (tests/fuzz/README.md).  The make rule
# passes FUZZ_CC, FUZZ_SECONDS, FUZZ_TARGETS, FUZZ_SOURCES (libhr's
# sources), FUZZ_CFLAGS and FUZZ_LIBS.
#
# Builds libhr and every target with $FUZZ_CC -fsanitize=fuzzer,address,
# undefined in BUILDDIR/fuzz-build (objects are rebuilt when a source or a
# header they include changed), then runs each target for FUZZ_SECONDS on
# the committed corpus and regression inputs, one after the other.  New
# inputs go to fuzz-build/work/TARGET, never into the committed corpus.  A
# crash, leak, timeout or OOM is copied to SRCDIR/tests/fuzz/regress/TARGET
# (commit it with the fix: `make check` replays it) and fails the run.
set -e
src=$1
top=$2
out=$top/fuzz-build
: "${FUZZ_CC:=clang}" "${FUZZ_SECONDS:=60}"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-g -O1 $san $FUZZ_CFLAGS"

command -v "$FUZZ_CC" >/dev/null 2>&1 ||
	{ echo "make fuzz: $FUZZ_CC not found (install clang, or make fuzz FUZZ_CC=...)" >&2; exit 2; }
mkdir -p "$out/obj" "$out/work" "$out/artifacts"
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$out/probe.c"
"$FUZZ_CC" -fsanitize=fuzzer,address,undefined "$out/probe.c" -o "$out/probe" 2>"$out/probe.log" ||
	{ echo "make fuzz: $FUZZ_CC cannot link -fsanitize=fuzzer (libclang_rt.fuzzer missing?):" >&2;
	  cat "$out/probe.log" >&2; exit 2; }

# stale OBJ: missing, or older than anything its .d file lists
stale() {
	[ -f "$1" ] && [ -f "${1%.o}.d" ] || return 0
	for dep in $(sed -e 's/\\$//' -e 's/^[^:]*://' "${1%.o}.d"); do
		[ "$dep" -nt "$1" ] && return 0
	done
	return 1
}
# cc SOURCE OBJ [extra flags]
cc() {
	srcf=$1 obj=$2
	shift 2
	if stale "$obj"; then
		echo "  FUZZCC  ${srcf#$src/}"
		"$FUZZ_CC" $cflags "$@" -MMD -MF "${obj%.o}.d" -c "$srcf" -o "$obj"
	fi
}

objs=
for f in $FUZZ_SOURCES; do
	case $f in *.c) ;; *) continue ;; esac
	if [ -f "$top/$f" ] && [ ! -f "$src/$f" ]; then p=$top/$f; else p=$src/$f; fi
	o=$out/obj/$(echo "$f" | tr / _ | sed 's/\.c$/.o/')
	cc "$p" "$o" -fsanitize=fuzzer-no-link
	objs="$objs $o"
done
rm -f "$out/libhr-fuzz.a"
ar rcs "$out/libhr-fuzz.a" $objs

for f in common session; do
	cc "$src/tests/fuzz/$f.c" "$out/obj/fz_$f.o" -fsanitize=fuzzer-no-link
done
for t in $FUZZ_TARGETS; do
	cc "$src/tests/fuzz/fz-$t.c" "$out/obj/fz-$t.o" -fsanitize=fuzzer-no-link
	echo "  FUZZLD  fz-$t"
	"$FUZZ_CC" $san -fsanitize=fuzzer "$out/obj/fz-$t.o" "$out/obj/fz_common.o" \
		"$out/obj/fz_session.o" "$out/libhr-fuzz.a" $FUZZ_LIBS -o "$out/fz-$t"
done

# the largest input worth trying, per target
max_len() {
	case $1 in
	staging) echo 262144 ;;
	snapshot) echo 131072 ;;
	frames) echo 65536 ;;
	*) echo 8192 ;;
	esac
}

failed=
for t in $FUZZ_TARGETS; do
	mkdir -p "$out/work/$t" "$out/artifacts/$t"
	dirs="$out/work/$t"
	for d in corpus regress; do
		[ -d "$src/tests/fuzz/$d/$t" ] && dirs="$dirs $src/tests/fuzz/$d/$t"
	done
	echo "make fuzz: fz-$t for ${FUZZ_SECONDS}s (log: fuzz-build/$t.log)"
	set +e
	"$out/fz-$t" -max_total_time="$FUZZ_SECONDS" -max_len="$(max_len "$t")" -timeout=25 \
		-rss_limit_mb=2048 -close_fd_mask=2 -print_final_stats=1 \
		-artifact_prefix="$out/artifacts/$t/" $dirs >"$out/$t.log" 2>&1
	rc=$?
	set -e
	grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$out/$t.log" | sed 's/^/    /'
	found=$(ls "$out/artifacts/$t" 2>/dev/null | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
	if [ $rc -ne 0 ] || [ -n "$found" ]; then
		echo "make fuzz: fz-$t FAILED (exit $rc); its report:" >&2
		grep -A25 -m1 -E '==ERROR|runtime error|deadly signal|ERROR: libFuzzer' "$out/$t.log" >&2 || tail -n 30 "$out/$t.log" >&2
		mkdir -p "$src/tests/fuzz/regress/$t"
		for a in $found; do
			mv "$out/artifacts/$t/$a" "$src/tests/fuzz/regress/$t/$a"
			echo "make fuzz: saved tests/fuzz/regress/$t/$a" >&2
		done
		failed="$failed $t"
	fi
done
[ -z "$failed" ] || { echo "make fuzz: crashes in:$failed" >&2; exit 1; }
echo "make fuzz: every target ran ${FUZZ_SECONDS}s without a crash"
