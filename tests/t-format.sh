#!/bin/sh
# One .clang-format for the tree: every tracked C file is formatted by it
# (`make format` fixes them).  Needs a git checkout and clang-format.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
command -v clang-format >/dev/null || skip_all "clang-format not installed"
git -C "$top_srcdir" rev-parse --git-dir >/dev/null 2>&1 || skip_all "not a git checkout"
plan 1
files=$(cd "$top_srcdir" && git ls-files '*.c' '*.h')
bad=$(cd "$top_srcdir" && for f in $files; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "$f"
done)
for f in $bad; do diag "not formatted: $f"; done
ok '[ -z "$bad" ]' "all $(echo "$files" | wc -w) C files follow .clang-format"
done_testing
