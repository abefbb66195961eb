#!/bin/sh
# Where hareplicated's log lines go (src/common/log.c, hr_log_init): to
# stderr in the foreground; detached, to syslog when a syslog daemon answers
# on /dev/log, else to the stderr it was started with (with a warning) -
# never nowhere.  /dev/log is the real path the C library's syslog() uses,
# so each case runs the real daemon in a private mount namespace
# (unshare -m) where /dev/log is made absent, or a socket this test reads
# (python3 receives the datagrams).  What it does not check: a syslog
# daemon that appears or goes after the daemon started (the choice is made
# once, at start).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (mount namespaces)"
command -v unshare >/dev/null || skip_all "unshare (util-linux) missing"
command -v python3 >/dev/null || skip_all "python3 missing"
unshare -m true 2>/dev/null || skip_all "unshare -m does not work here"
plan 9
P=$((20000 + ($$ * 17) % 20000))

# 1. foreground: stderr
"$HRD" -f --no-config --insecure --control "$T/f/control.sock" --state-dir "$T/f" \
	--listen "127.0.0.1:$P" 2>"$T/f.err" &
pid=$!
on_exit "kill -9 $pid 2>/dev/null"
ok 'wait_for "$T/f.err" "info: hareplicated [0-9.]+: control $T/f/control.sock" 10' \
	"foreground: the start line is on stderr"
kill "$pid"
wait_exit "$pid" 10
ok 'grep -q "info: exiting" "$T/f.err"' "foreground: so is the last line (rc=$rc)"

# detached in a mount namespace where /dev/log is what $1 makes it
detached() { # SETUP NAME PORT
	cat >"$T/$2.sh" <<SH
set -e
$1
exec "$HRD" --no-config --insecure --control "$T/$2/control.sock" --state-dir "$T/$2" \
	--listen "127.0.0.1:$3" --pidfile "$T/$2.pid" 2>"$T/$2.err"
SH
	unshare -m --propagation private sh "$T/$2.sh" 2>"$T/$2.setup-err"
}

# 2. no syslog: /dev/log absent (or, where the host has one, a regular file
#    bound over it: nothing answers there either)
detached 'if [ -e /dev/log ]; then : >"'"$T"'/not-a-socket"; mount --bind "'"$T"'/not-a-socket" /dev/log; fi' \
	nolog $((P + 1))
rc=$?
ok '[ $rc = 0 ] && wait_true 10 test -s "$T/nolog.pid"' "no syslog: the daemon detached (rc=$rc $(cat "$T/nolog.setup-err"))"
dpid=$(cat "$T/nolog.pid" 2>/dev/null)
is_pid "$dpid" && on_exit "kill -9 $dpid 2>/dev/null"
ok 'wait_for "$T/nolog.err" "warning: no syslog daemon answers on /dev/log: logging to stderr" 10 &&
	wait_for "$T/nolog.err" "info: hareplicated [0-9.]+: control $T/nolog/control.sock" 10' \
	"no syslog: after detaching, the warning and the start line reach the stderr it was started with"
kill_pid -TERM "$dpid"
ok 'wait_for "$T/nolog.err" "info: signal 15: exiting" 10' "no syslog: the line about SIGTERM too"

# 3. syslog: a datagram socket at /dev/log, read by this test
cat >"$T/syslogd.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.2)
end = time.time() + 60
with open(sys.argv[2], "a") as out:
    print("ready", file=out, flush=True)
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        print(d.decode("utf-8", "replace"), file=out, flush=True)
PY
python3 "$T/syslogd.py" "$T/syslog.sock" "$T/syslog.out" &
spid=$!
on_exit "kill $spid 2>/dev/null"
wait_for "$T/syslog.out" '^ready$' 10
# a tmpfs over /dev with the host's null/zero/random/urandom bound in, and
# the test's socket bound at /dev/log
mkdir -p "$T/hostdev"
detached "mount --rbind /dev '$T/hostdev'
mount -t tmpfs -o mode=0755 hrtestdev /dev
for n in null zero random urandom log; do : >/dev/\$n; done
for n in null zero random urandom; do mount --bind '$T/hostdev'/\$n /dev/\$n; done
mount --bind '$T/syslog.sock' /dev/log
umount -l '$T/hostdev'" withlog $((P + 2))
rc=$?
ok '[ $rc = 0 ] && wait_true 10 test -s "$T/withlog.pid"' "syslog: the daemon detached (rc=$rc $(cat "$T/withlog.setup-err"))"
dpid=$(cat "$T/withlog.pid" 2>/dev/null)
is_pid "$dpid" && on_exit "kill -9 $dpid 2>/dev/null"
ok 'wait_for "$T/syslog.out" "^<30>.*hareplicated\[$dpid\]: hareplicated [0-9.]+: control $T/withlog/control.sock" 10' \
	"syslog: the start line arrives at /dev/log (facility daemon, info, the daemon's pid)"
kill_pid -TERM "$dpid"
ok 'wait_for "$T/syslog.out" "hareplicated\[$dpid\]: signal 15: exiting" 10' "syslog: so does the line about SIGTERM"
wait_true 10 sh -c "! kill -0 $dpid"
ok '! grep -q "hareplicated" "$T/withlog.err"' "syslog: nothing went to stderr ($(head -c 200 "$T/withlog.err"))"
done_testing
