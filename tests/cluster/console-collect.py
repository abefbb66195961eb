#!/usr/bin/env python3
"""console-collect.py PORT ADDR STATUSFILE - the outside world of the
cluster tests: it takes the console connections of whichever host runs the
guest (hareplicate's tcp: console, frames `u64 offset LE | u32 len LE |
bytes`) and checks the contract on what it receives:
  - no contradiction: bytes at an offset it already holds come again identical
  - no gap: the stream is contiguous (a frame past the end waits for the
    bytes before it; still waiting at the end is a gap), the guest's seq
    goes up by exactly one (memwalk's seq=N with errors=0, or the mem
    backend's guest's step=N, maybe '.'-padded, which has no self-check)
  - one speaker: new bytes (past the end) come from one host at a time; every
    change of the host that extends the stream is counted (a failover is one;
    going back and forth is two hosts releasing output)
It rewrites STATUSFILE (one JSON object) after every change."""
import json, re, select, socket, struct, sys, time

port, addr, status_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port))
srv.listen(16)
stream = bytearray()
pending = {}  # offset -> (bytes, host)
conns = {}  # socket -> [host, buffer]
st = {"bytes": 0, "violations": [], "speaker": None, "switches": [], "last_seq": None,
      "lines": 0, "frames": 0, "pending": 0, "conns": 0}
line_pos = 0
RE = re.compile(rb"memwalk: seq=(\d+) tsc=\d+ dirtied=\d+ errors=(\d+)|^mem: step=(\d+)\.*$")


def violation(msg):
    if len(st["violations"]) < 20:
        st["violations"].append("%.3f %s" % (time.time(), msg))


def check_lines():
    global line_pos
    while True:
        nl = stream.find(b"\n", line_pos)
        if nl < 0:
            return
        m = RE.search(bytes(stream[line_pos:nl]))
        line_pos = nl + 1
        if not m:
            continue
        seq, err = int(m.group(1) or m.group(3)), int(m.group(2) or 0)
        if st["last_seq"] is not None and seq != st["last_seq"] + 1:
            violation("seq %d after %d" % (seq, st["last_seq"]))
        if err:
            violation("guest reports errors=%d at seq %d" % (err, seq))
        st["last_seq"] = seq
        st["lines"] += 1


def extend(host, data):
    if st["speaker"] != host:
        if st["speaker"] is not None:
            st["switches"].append({"t": time.time(), "from": st["speaker"], "to": host,
                                   "at": len(stream)})
        st["speaker"] = host
    stream.extend(data)


def frame(host, off, data):
    st["frames"] += 1
    end = len(stream)
    if off < end:
        n = min(len(data), end - off)
        if bytes(stream[off:off + n]) != data[:n]:
            violation("contradiction from %s at offset %d" % (host, off))
        data, off = data[n:], off + n
    if not data:
        return
    if off > end:
        pending[off] = (data, host)
        return
    extend(host, data)
    while pending:  # the frames that waited for these bytes
        k = min(pending)
        if k > len(stream):
            break
        d, h = pending.pop(k)
        frame(h, k, d)
    check_lines()


def save():
    st["bytes"] = len(stream)
    st["pending"] = len(pending)
    st["conns"] = len(conns)
    with open(status_path + ".tmp", "w") as f:
        json.dump(st, f)
    import os
    os.replace(status_path + ".tmp", status_path)


save()
while True:
    r, _, _ = select.select([srv] + list(conns), [], [], 1.0)
    changed = False
    for s in r:
        if s is srv:
            c, a = srv.accept()
            conns[c] = [a[0], bytearray()]
            changed = True
            continue
        try:
            d = s.recv(65536)
        except OSError:
            d = b""
        if not d:
            del conns[s]
            s.close()
            changed = True
            continue
        host, buf = conns[s]
        buf.extend(d)
        while len(buf) >= 12:
            off, ln = struct.unpack_from("<QI", buf, 0)
            if len(buf) < 12 + ln:
                break
            frame(host, off, bytes(buf[12:12 + ln]))
            del buf[:12 + ln]
            changed = True
    if changed:
        save()
