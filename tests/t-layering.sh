#!/bin/sh
# The layers as the folders say, checked on the #include lines: src/common
# uses nothing above it; the engine (src/core), the transports and the
# backends may use ha/ but not the daemon or the command line; ha/ (libhr's
# HA decisions) includes no daemon/ or cli/ header; the command line
# (src/cli, and ha/drill, which is `hareplicate drill`) talks to the daemon
# over its socket and includes none of its internals.  What they share
# lives in src/common (kv.h, paths.h).
# And one rule of the same kind: the +tokens are spelt in ha/token.c only.
# Works on the source files alone (no build, no git needed).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
plan 9

# includes DIR DEPTH LAYERS: the #include lines of DIR's .c/.h files (DEPTH 1:
# DIR itself only) naming a header under one of LAYERS (an ERE alternation),
# also as ../LAYER/ or <LAYER/>; prints FILE:LINE:TEXT per offence.
includes() {
	[ -d "$1" ] || return 0
	find "$1" -maxdepth "$2" -type f \( -name '*.c' -o -name '*.h' \) -print |
		sort | xargs -r grep -nE \
		"^[[:space:]]*#[[:space:]]*include[[:space:]]*[\"<](\.\./)*($3)/" /dev/null
}

# forbid DIR DEPTH LAYERS WHAT: one test point; the offences as diagnostics.
forbid() {
	bad=$(cd "$top_srcdir" && includes "$1" "$2" "$3")
	echo "$bad" | while IFS= read -r l; do [ -n "$l" ] && diag "$l"; done
	ok '[ -z "$bad" ]' "$4"
}

# the check itself finds an offence (else every point below would pass blindly)
mkdir -p "$T/ha"
printf '#include <stdio.h>\n # include "daemon/daemon.h"\n#include "common/log.h"\n' >"$T/ha/x.c"
printf '#include "../cli/ctl.h"\n' >"$T/ha/y.h"
n=$( (cd "$T" && includes ha 1 'daemon|cli') | wc -l)
ok '[ "$n" = 2 ]' "the check sees \"daemon/\" and \"../cli/\" includes ($n of 2)"

forbid src/common 1 'daemon|cli|core|ha|net|backends' \
	"src/common includes nothing from the other layers"
forbid src/core 1 'daemon|cli' "src/core (the engine) includes no daemon/ or cli/ header"
forbid ha 1 'daemon|cli' "ha/ includes no daemon/ or cli/ header"
forbid ha/drill 1 'daemon' "ha/drill (hareplicate drill) includes no daemon/ header"
forbid src/cli 1 'daemon' "src/cli includes no daemon/ header (only src/common's kv.h, paths.h)"
forbid src/net 1 'daemon|cli' "src/net includes no daemon/ or cli/ header"
forbid src/backends 2 'daemon|cli' "src/backends includes no daemon/ or cli/ header"

# the stable +tokens are spelt in one table (ha/token.c), logged by one function
tok=$(cd "$top_srcdir" && grep -rn '"+[a-z]' src ha --include=*.c | grep -v '^ha/token\.c:')
echo "$tok" | while IFS= read -r l; do [ -n "$l" ] && diag "$l"; done
ok '[ -z "$tok" ]' "no \"+token\" literal outside ha/token.c"
done_testing
