#!/bin/sh
# hareplicated's configuration file (src/daemon/options.c, hareplicated.conf(5)):
# a good file is taken whole, an unknown key or a bad value is refused with
# FILE:LINE and the reason (exit 2), the command line overrides the file (a
# security option on the command line replaces the file's whole security
# group), and a daemon started with nothing but --config really runs with
# the file's settings.  Also --version.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
plan 27
P=$((20000 + ($$ * 13) % 20000))

# check FILE [OPTIONS]: --check-config; stdout in $T/out, stderr in $T/err, $rc
check() {
	_f=$1
	shift
	"$HRD" --config "$_f" --check-config "$@" >"$T/out" 2>"$T/err"
	rc=$?
}
has() { grep -qxF "$1" "$T/out"; }
err_is() { grep -qF "$1" "$T/err"; }

"$HRD" --version >"$T/out" 2>&1
rc=$?
ok '[ $rc = 0 ] && grep -qx "hareplicated (hareplicate) [0-9][0-9.]*" "$T/out"' "hareplicated --version: $(cat "$T/out")"
"$HR" --version >"$T/out" 2>&1
rc=$?
ok '[ $rc = 0 ] && grep -qx "hareplicate (hareplicate) [0-9][0-9.]*" "$T/out"' "hareplicate --version: $(cat "$T/out")"

cat >"$T/good.conf" <<CONF
# every setting hareplicated has (flags as yes/no)
control = $T/run/control.sock
listen = 127.0.0.1:$P
state-dir = $T/state
failover-timeout = 750
unprotected-output = release
max-memory = 2G
max-vcpus = 8
epochs-log-max = 64K
console-default = file:$T/consoles/%s.out
witness = 127.0.0.1:7300
replica-tap = hr-%s
node = host-1
lease-ms = 3000
insecure = yes
pidfile = $T/hrd.pid
foreground = yes
verbose = yes
CONF
check "$T/good.conf"
ok '[ $rc = 0 ]' "a good file passes --check-config (rc=$rc $(head -c 300 "$T/err"))"
ok 'has "control = $T/run/control.sock" && has "listen = 127.0.0.1:$P" && has "state-dir = $T/state" &&
	has "failover-timeout = 750" && has "unprotected-output = release" && has "max-memory = 2147483648" &&
	has "max-vcpus = 8" && has "epochs-log-max = 65536" && has "console-default = file:$T/consoles/%s.out" &&
	has "witness = 127.0.0.1:7300" && has "replica-tap = hr-%s" && has "node = host-1" &&
	has "lease-ms = 3000" && has "insecure = yes" && has "pidfile = $T/hrd.pid" &&
	has "foreground = yes" && has "verbose = yes"' "every setting of the file is in force"
ok 'head -1 "$T/out" | grep -qF "settings from $T/good.conf"' "--check-config names the file it read"
grep -v '^#' "$T/out" >"$T/printed.conf"
check "$T/printed.conf"
ok '[ $rc = 0 ] && has "failover-timeout = 750"' "what --check-config prints is itself a good file (rc=$rc)"

# refusals: FILE:LINE: reason, exit 2, nothing started
refuse() { # LINE_TEXT WANT_REASON MESSAGE
	printf 'listen = 127.0.0.1:%s\ninsecure = yes\n%s\nnode = after\n' "$P" "$1" >"$T/bad.conf"
	check "$T/bad.conf"
	want="$T/bad.conf:3: $2"
	ok '[ $rc = 2 ] && err_is "$want" && [ ! -s "$T/out" ]' "$3 (rc=$rc: $(cat "$T/err"))"
}
refuse "bogus = 1" "unknown key 'bogus'" "an unknown key"
refuse "config = /etc/x" "unknown key 'config' (a command-line option only)" "config inside the file"
refuse "failover-timeout = 5s" "bad failover-timeout '5s' (milliseconds, 1..3600000)" "a bad number"
refuse "max-vcpus = 65" "bad max-vcpus '65' (1..64)" "a number out of range"
refuse "max-memory = -1G" "bad max-memory '-1G'" "a bad size"
refuse "node = -x" "bad node '-x'" "a bad node name"
refuse "foreground = 1" "foreground takes yes or no, not '1'" "a flag with a value other than yes/no"
refuse "unprotected-output = maybe" "unprotected-output takes hold or release, not 'maybe'" "a bad choice"
refuse "listen = 127.0.0.1:1" "listen set again (first on line 1)" "a key given twice"
refuse "listen" "expected \`key = value\`" "a line without ="

# the command line wins
printf 'listen = 127.0.0.1:1111\nfailover-timeout = 900\nnode = filenode\ninsecure = yes\n' >"$T/o.conf"
check "$T/o.conf" --listen "127.0.0.1:$P" --node clinode
ok '[ $rc = 0 ] && has "listen = 127.0.0.1:$P" && has "node = clinode" && has "failover-timeout = 900"' \
	"command-line --listen and --node override the file, the rest of the file stays"
"$HR" cert psk "$T/psk" >/dev/null 2>&1
check "$T/o.conf" --tls-psk "$T/psk"
ok '[ $rc = 0 ] && has "insecure = no" && has "tls-psk = $T/psk"' \
	"--tls-psk on the command line replaces the file's insecure = yes (rc=$rc $(cat "$T/err"))"
printf 'insecure = yes\nserve-witness = yes\n' >"$T/w.conf"
check "$T/w.conf" --witness 127.0.0.1:9
ok '[ $rc = 0 ] && has "serve-witness = no" && has "witness = 127.0.0.1:9"' \
	"--witness on the command line replaces the file's serve-witness = yes (rc=$rc $(cat "$T/err"))"
check "$T/o.conf" --failover-timeout 0
ok '[ $rc = 2 ] && err_is "bad --failover-timeout '"'0'"'"' "a bad value on the command line is named as an option (rc=$rc)"
"$HRD" --config "$T/missing.conf" --check-config >"$T/out" 2>"$T/err"
rc=$?
ok '[ $rc = 1 ] && err_is "$T/missing.conf: No such file or directory"' "a --config file that is missing: exit 1 (rc=$rc)"
"$HRD" --no-config --check-config --insecure >"$T/out" 2>"$T/err"
rc=$?
ok '[ $rc = 0 ] && head -1 "$T/out" | grep -qF "(no file)"' "--no-config reads no file"

# `hareplicate start --config` reads its file with the same reader
printf 'peer = 127.0.0.1:1\nvm-name = x\n' >"$T/start.conf"
"$HR" start vm1 --config "$T/start.conf" --kernel /nonexistent >"$T/out" 2>"$T/err"
rc=$?
ok '[ $rc = 2 ] && err_is "hareplicate start: $T/start.conf:2: unknown key '"'vm-name'"'"' \
	"start --config: an unknown key is refused with file:line (rc=$rc: $(cat "$T/err"))"
printf 'peer = 127.0.0.1:1\nmemory = 1G\nmemory = 2G\n' >"$T/start.conf"
"$HR" start vm1 --config "$T/start.conf" --kernel /nonexistent >"$T/out" 2>"$T/err"
rc=$?
ok '[ $rc = 2 ] && err_is "$T/start.conf:3: memory set again (first on line 2)"' \
	"start --config: a repeated key is refused (rc=$rc: $(cat "$T/err"))"

# a daemon started with only --config runs with the file's settings
mkdir -p "$T/consoles"
"$HRD" --config "$T/good.conf" 2>"$T/d.err" &
pid=$!
on_exit "kill -9 $pid 2>/dev/null"
wait_true 10 "$HR" status --control "$T/run/control.sock"
"$HR" status --json --control "$T/run/control.sock" >"$T/st" 2>&1
ok 'grep -qF "\"pid\": $pid, \"listen\": \"127.0.0.1:$P\", \"transport\": \"insecure\"" "$T/st"' \
	"the daemon answers on the file's control socket, listening on the file's port, insecure ($(cat "$T/st"))"
ok 'wait_for "$T/d.err" "settings: $T/good.conf and the command line" 5 && [ "$(cat "$T/hrd.pid" 2>/dev/null)" = "$pid" ]' \
	"it logs the file it read (foreground = yes: on stderr) and wrote the file's pidfile"
kill "$pid"
wait_exit "$pid" 10
ok '[ "$rc" = 0 ]' "SIGTERM: exit 0 (rc=$rc)"
done_testing
