#!/bin/sh
# `make install DESTDIR=...` and a look at the tree: binaries that run and
# say the configured version, the unit and the init script naming the
# configured sbindir, man pages that render without a warning and name
# every option the programs' --help names (and no other), the bash
# completion completing from the installed programs, the installed
# configuration file good for --check-config, the drill's netprobe and
# guests in place - and, as root with /dev/kvm, one real drill run from the
# installed tree (bound over the prefix in a private mount namespace, so
# that the program finds nothing but its installed files).  Then make
# uninstall leaves nothing.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ -n "${MAKE:-}" ] && [ -n "${sbindir:-}" ] || skip_all "run by make check (needs MAKE and the install directories)"
command -v man >/dev/null || skip_all "man (man-db) missing"
plan 26
S="$T/stage"
# a make of our own, not a job of the make running the tests
unset MAKEFLAGS MFLAGS MAKELEVEL
$MAKE -s -C "$top_builddir" install DESTDIR="$S" >"$T/install.log" 2>&1
rc=$?
ok '[ $rc = 0 ]' "make install DESTDIR=... (rc=$rc; $(tail -3 "$T/install.log"))"

ok '[ -x "$S$bindir/hareplicate" ] && [ -x "$S$sbindir/hareplicated" ]' "hareplicate in $bindir, hareplicated in $sbindir"
v1=$("$S$bindir/hareplicate" --version 2>&1)
v2=$("$S$sbindir/hareplicated" --version 2>&1)
ok '[ "$v1" = "hareplicate (hareplicate) $PACKAGE_VERSION" ] && [ "$v2" = "hareplicated (hareplicate) $PACKAGE_VERSION" ]' \
	"both installed programs run and say version $PACKAGE_VERSION ($v1; $v2)"

unit="$S$systemdsystemunitdir/hareplicated.service"
if [ "$systemdsystemunitdir" = no ]; then
	ok true "# SKIP configured --with-systemdsystemunitdir=no"
	ok true "# SKIP (as above)"
else
	ok 'grep -qx "ExecStart=$sbindir/hareplicated --foreground \$HAREPLICATED_OPTS" "$unit"' \
		"the unit's ExecStart names $sbindir/hareplicated"
	ok '! grep -q "@[a-z_]*@" "$unit" && grep -q "^Documentation=man:hareplicated(8)" "$unit"' "no template left in the unit"
fi
init="$S$initddir/hareplicated"
if [ "$initddir" = no ]; then
	ok true "# SKIP configured --with-initddir=no"
else
	ok '[ -x "$init" ] && grep -qx "DAEMON=$sbindir/hareplicated" "$init" && sh -n "$init"' \
		"the init script is executable, names $sbindir/hareplicated and parses"
fi

# man pages: render to text without a warning
for page in man8/hareplicate.8 man8/hareplicated.8 man5/hareplicated.conf.5; do
	f="$S$mandir/$page"
	name=$(basename "$page" | sed 's/\.[0-9]$//')
	MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$f" >"$T/$name.txt" 2>"$T/$name.err"
	rc=$?
	ok '[ $rc = 0 ] && [ ! -s "$T/$name.err" ] && grep -q "^NAME" "$T/$name.txt" &&
		grep -q "^ *$name - " "$T/$name.txt" && [ "$(wc -l <"$T/$name.txt")" -gt 60 ] && ! grep -q "@[a-zA-Z_]*@" "$f" &&
		! grep -q "‐" "$T/$name.txt"' \
		"man -l $page renders, no warnings, no template left, no word hyphenated (rc=$rc $(head -c 200 "$T/$name.err"))"
done

# every option a --help names is in the page, and every option the page names is a real one
HRI="$S$bindir/hareplicate"
HRDI="$S$sbindir/hareplicated"
opts() { grep -o -- '--[a-z][a-z0-9-]*' | sort -u; }
"$HRI" --help | opts >"$T/cli.opts"
for c in $("$HRI" --help | awk '/^commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 }'); do
	"$HRI" "$c" --help | opts >>"$T/cli.opts"
done
sort -u -o "$T/cli.opts" "$T/cli.opts"
# (from the page's source: the rendered text may hyphenate a long option)
man_opts() { sed 's/\\-/-/g' "$1" | opts; }
man_opts "$S$mandir/man8/hareplicate.8" >"$T/cli.man"
missing=$(comm -23 "$T/cli.opts" "$T/cli.man" | tr '\n' ' ')
extra=$(comm -13 "$T/cli.opts" "$T/cli.man" | tr '\n' ' ')
ok '[ -z "$missing" ] && [ -z "$extra" ] && [ "$(wc -l <"$T/cli.opts")" -gt 40 ]' \
	"hareplicate(8) names every option of every command's --help, and no other (missing: $missing; unknown: $extra)"
"$HRDI" --help | opts >"$T/d.opts"
man_opts "$S$mandir/man8/hareplicated.8" >"$T/d.man"
missing=$(comm -23 "$T/d.opts" "$T/d.man" | tr '\n' ' ')
extra=$(comm -13 "$T/d.opts" "$T/d.man" | tr '\n' ' ')
ok '[ -z "$missing" ] && [ -z "$extra" ]' "hareplicated(8) names every option of --help, and no other (missing: $missing; unknown: $extra)"
"$HRDI" --no-config --insecure --check-config | sed -n 's/^#* *\([a-z-]*\)\( =\|:\).*/\1/p' | sort -u >"$T/keys"
missing=""
for k in $(cat "$T/keys"); do
	sed 's/\\-/-/g' "$S$mandir/man5/hareplicated.conf.5" | grep -q "^\.B[IR] \"$k = " || missing="$missing $k"
	grep -q "^#$k = " "$S$sysconfdir/hareplicate/hareplicated.conf" || missing="$missing $k(example)"
done
ok '[ -z "$missing" ] && [ "$(wc -l <"$T/keys")" -ge 20 ]' \
	"hareplicated.conf(5) and the installed example list every setting ($(wc -l <"$T/keys") keys; missing:$missing)"

# bash completion, with the installed programs
comp="$S$bashcompletiondir"
[ "$bashcompletiondir" = no ] && comp="$top_srcdir/contrib" && cp "$comp/hareplicate.bash-completion" "$T/hareplicate" &&
	cp "$T/hareplicate" "$T/hareplicated" && comp=$T # not installed: test the source
ok '[ -f "$comp/hareplicate" ] && [ -f "$comp/hareplicated" ]' "completion files for both programs in $bashcompletiondir"
complete_words() { # FILE FUNCTION WORD... (the last one is completed)
	_f=$1 _fn=$2
	shift 2
	bash -c '. "$1"; fn=$2; shift 2; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); $fn; echo "${COMPREPLY[*]}"' \
		sh "$_f" "$_fn" "$@" 2>&1
}
got=$(complete_words "$comp/hareplicate" _hareplicate "$HRI" dr)
ok '[ "$got" = drill ]' "hareplicate dr<TAB> -> drill ($got)"
got=$(complete_words "$comp/hareplicate" _hareplicate "$HRI" migrate vm1 --max)
ok '[ "$got" = --max-bandwidth ]' "hareplicate migrate vm1 --max<TAB> -> --max-bandwidth ($got)"
got=$(complete_words "$comp/hareplicated" _hareplicated "$HRDI" --tls-p)
ok '[ "$got" = "--tls-pin --tls-psk" ]' "hareplicated --tls-p<TAB> -> --tls-pin --tls-psk ($got)"
got=$(complete_words "$comp/hareplicated" _hareplicated "$HRDI" --unprotected-output "")
ok '[ "$got" = "hold release" ]' "hareplicated --unprotected-output <TAB> -> hold release ($got)"

# the installed configuration file
conf="$S$sysconfdir/hareplicate/hareplicated.conf"
"$HRDI" --config "$conf" --check-config --insecure >"$T/out" 2>"$T/err"
rc=$?
ok '[ $rc = 0 ] && grep -qx "listen = 0.0.0.0:7788" "$T/out"' "the installed file (all commented) passes --check-config (rc=$rc $(cat "$T/err"))"
# its CA-mode lines taken at their word, the certificates made here
mkdir -p "$T/pki/ca" "$T/pki/host1"
"$HRI" cert ca "$T/pki/ca" >/dev/null && "$HRI" cert host "$T/pki/host1" --name host1 --ca "$T/pki/ca" >/dev/null
sed -e 's/^#\([a-z-]* = \)/\1/' -e '/^\(tls-pin\|tls-psk\|insecure\|serve-witness\) = /s/^/#/' \
	-e "s|$sysconfdir/hareplicate/|$T/pki/host1/|" "$conf" >"$T/ca.conf"
"$HRDI" --config "$T/ca.conf" --check-config >"$T/out" 2>"$T/err"
rc=$?
ok '[ $rc = 0 ] && grep -qx "tls-ca = $T/pki/host1/ca.crt" "$T/out" && grep -qx "node = host1" "$T/out" &&
	grep -qx "witness = witness-host" "$T/out" && grep -qx "max-memory = 68719476736" "$T/out"' \
	"the file's example settings, uncommented (CA mode), pass --check-config with real certificates (rc=$rc $(cat "$T/err"))"
echo "node = host1" >>"$conf"
$MAKE -s -C "$top_builddir" install DESTDIR="$S" >"$T/install2.log" 2>&1
ok 'tail -1 "$conf" | grep -qx "node = host1" && grep -q "hareplicated.conf exists: left as it is" "$T/install2.log"' \
	"make install again keeps a changed configuration file"

# the drill's files
ok '[ -x "$S$pkglibexecdir/netprobe" ] && [ -f "$S$pkgdatadir/guests/netsvc.elf" ] && [ -f "$S$pkgdatadir/guests/memwalk.elf" ]' \
	"netprobe in $pkglibexecdir, netsvc.elf and memwalk.elf in $pkgdatadir/guests"
"$HRI" drill --help >"$T/dh"
ok 'grep -qF "$pkglibexecdir/netprobe" "$T/dh" && grep -qF "$pkgdatadir/guests" "$T/dh" && grep -qF "$sbindir/hareplicated" "$T/dh"' \
	"drill --help names the installed places it falls back to"
if [ "$(id -u)" = 0 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ -d "$prefix" ] && command -v unshare >/dev/null &&
	unshare -m true 2>/dev/null; then
	# the staged tree where it will be installed: the program's only copies
	cat >"$T/drill.sh" <<SH
set -e
mount --bind "$S$prefix" "$prefix"
cd /
exec env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$bindir/hareplicate" drill --epochs 30 --timeout 60 -v
SH
	nice -n 5 unshare -m --propagation private sh "$T/drill.sh" >"$T/drill.out" 2>"$T/drill.err"
	rc=$?
	ok 'grep -qF "daemon $sbindir/hareplicated, guest $pkgdatadir/guests/netsvc.elf, netprobe $pkglibexecdir/netprobe" "$T/drill.err"' \
		"the installed drill found the installed daemon, guest and netprobe"
	ok '[ $rc = 0 ] && grep -q "^drill: PASS" "$T/drill.out"' \
		"... and passed with them (rc=$rc: $(tail -1 "$T/drill.out"))"
else
	ok true "# SKIP the installed drill needs root, /dev/kvm, unshare and an existing $prefix"
	ok true "# SKIP (as above)"
fi

$MAKE -s -C "$top_builddir" uninstall DESTDIR="$S" >"$T/uninstall.log" 2>&1
rc=$?
left=$(find "$S" -type f | sed "s|^$S||" | tr '\n' ' ')
ok '[ $rc = 0 ] && [ "$left" = "$sysconfdir/hareplicate/hareplicated.conf " ]' \
	"make uninstall removes every file but the changed configuration file (left: $left)"
rm -f "$conf"
ok 'grep -q "was changed: left in place" "$T/uninstall.log"' "... and says so"
done_testing
