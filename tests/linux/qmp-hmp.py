#!/usr/bin/env python3
# qmp-hmp.py SOCKET COMMAND... - run HMP commands ("info registers -a",
# "x/8i $pc") on a QEMU through its QMP socket (-qmp unix:SOCKET,server=on,
# wait=off) and print each as "(qemu) COMMAND" followed by its output.
# nested.sh's freeze evidence.  Exit status 1 if QEMU did not answer within
# a few seconds (a QEMU whose main loop is stuck says so too).
import json
import socket
import sys


def main():
    if len(sys.argv) < 3:
        print("usage: qmp-hmp.py SOCKET COMMAND...", file=sys.stderr)
        return 2
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(sys.argv[1])
        f = s.makefile("rw")

        def call(cmd, args=None):
            msg = {"execute": cmd}
            if args is not None:
                msg["arguments"] = args
            f.write(json.dumps(msg) + "\n")
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    raise OSError("QMP socket closed")
                r = json.loads(line)
                if "return" in r or "error" in r:
                    return r
                # asynchronous events ("event": ...) are skipped

        f.readline()  # the greeting
        call("qmp_capabilities")
        for c in sys.argv[2:]:
            r = call("human-monitor-command", {"command-line": c})
            print("(qemu) " + c)
            out = r.get("return", r.get("error"))
            sys.stdout.write(out if isinstance(out, str) else json.dumps(out) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError) as e:
        print("qmp-hmp: %s: %s" % (sys.argv[1], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
