#!/usr/bin/env python3
"""netsvc-rawtcp.py IFACE GUEST_IP GUEST_MAC PORT - TCP edge cases against
tests/guests/netsvc from a fake peer on a raw socket (root).

The peer is 10.0.0.99-style: PEER_IP (the guest's /24 with host part 99)
and a locally administered MAC that no kernel owns, so nobody else answers
the guest; netsvc sends its answers to the Ethernet source, so no ARP is
involved.  The kernel client (netprobe) cannot make segments go missing or
arrive out of order; this can.  Prints exactly one line per check, in a
fixed order: "ok NAME" or "not ok NAME: why" (tests/t-netsvc-qemu.sh turns
them into TAP points; NAMES below is the list).
"""
import os
import random
import socket
import struct
import sys
import time

NAMES = [
    "handshake: SYN-ACK acknowledges our SYN and carries MSS",
    "a segment with a bad checksum is ignored",
    "an out-of-order segment is dropped and rcv_nxt re-acknowledged",
    "in-order data is answered",
    "an unacknowledged answer is retransmitted after ~200 ms, then backed off",
    "an old duplicate is re-acknowledged and not answered again",
    "the running sum goes on after the retransmissions",
    "FIN is acknowledged and answered with our FIN",
    "a segment for the closed connection gets a RST",
    "a SYN to a closed port gets RST+ACK",
    "a shut window is probed (bare ACKs for snd_una - 1) and the answer goes out when it opens",
]
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Peer:
    def __init__(self, iface, gip, gmac, port):
        # ETH_P_ALL: on a bridge port, only those taps see what comes in
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        self.sock.bind((iface, 0))
        # The kernel's arrival times: this process may be scheduled late.
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.gip = socket.inet_aton(gip)
        self.ip = self.gip[:3] + bytes([99])
        self.gmac = bytes.fromhex(gmac.replace(":", ""))
        self.mac = bytes.fromhex("020000000099")
        self.gport = port
        self.port = random.randint(20000, 60000)
        self.ipid = 1

    def send(self, seq, ack, flags, data=b"", opts=b"", dport=None, sport=None, bad_csum=False,
             win=64240):
        hl = 20 + len(opts)
        tcp = struct.pack("!HHIIBBHHH", sport or self.port, dport or self.gport,
                          seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (hl // 4) << 4, flags,
                          win, 0, 0) + opts + data
        pseudo = self.ip + self.gip + struct.pack("!BBH", 0, 6, len(tcp))
        c = csum(pseudo + tcp) ^ (0x5555 if bad_csum else 0)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), self.ipid, 0x4000, 64, 6, 0,
                         self.ip, self.gip)
        self.ipid += 1
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        self.sock.send(self.gmac + self.mac + b"\x08\x00" + ip + tcp)

    def recv(self, timeout, sport=None):
        """The next segment from the guest to us (sport: from that port), or None."""
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                f, anc, _, _ = self.sock.recvmsg(4096, 64)
            except socket.timeout:
                return None
            t = time.time()
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack("qq", data[:16])
                    t = sec + nsec / 1e9
            if f[:6] != self.mac or f[12:14] != b"\x08\x00":
                continue
            ip = f[14:]
            hl = (ip[0] & 15) * 4
            tot = struct.unpack("!H", ip[2:4])[0]
            if ip[9] != 6 or ip[12:16] != self.gip or ip[16:20] != self.ip:
                continue
            tcp = ip[hl:tot]
            sp, dp, seq, ack, off, fl, win = struct.unpack("!HHIIBBH", tcp[:16])
            if dp != self.port or (sport is not None and sp != sport):
                continue
            thl = (off >> 4) * 4
            pseudo = self.gip + self.ip + struct.pack("!BBH", 0, 6, len(tcp))
            return {"seq": seq, "ack": ack, "flags": fl, "win": win, "data": tcp[thl:],
                    "opts": tcp[20:thl], "csum_ok": csum(pseudo + tcp) == 0,
                    "ip_ok": csum(ip[:hl]) == 0, "t": t}

    def quiet(self, timeout):
        """Segments that arrive within timeout (none expected)."""
        out = []
        while True:
            s = self.recv(timeout)
            if not s:
                return out
            out.append(s)


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: netsvc-rawtcp.py IFACE GUEST_IP GUEST_MAC PORT")
    p = Peer(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
    results = []

    def check(cond, why):
        results.append(None if cond else (why or "failed"))
        return cond

    def fmt(s):
        if not s:
            return "nothing"
        return "seq=%u ack=%u flags=0x%02x win=%u len=%d csum_ok=%s" % (
            s["seq"], s["ack"], s["flags"], s["win"], len(s["data"]), s["csum_ok"])

    isn = random.getrandbits(32)
    p.send(isn, 0, SYN, opts=struct.pack("!BBH", 2, 4, 1000))
    s = p.recv(2)
    ok = (s and s["flags"] == SYN | ACK and s["ack"] == (isn + 1) & 0xFFFFFFFF and s["csum_ok"]
          and s["ip_ok"] and s["opts"][:4] == struct.pack("!BBH", 2, 4, 1460) and s["win"] > 0)
    if not check(ok, "got " + fmt(s)):
        for _ in NAMES[1:]:
            results.append("no connection")
        return report(results)
    gseq = s["seq"] + 1
    mseq = (isn + 1) & 0xFFFFFFFF
    p.send(mseq, gseq, ACK)

    p.send(mseq, gseq, ACK | PSH, b"4\n", bad_csum=True)
    got = p.quiet(0.3)
    check(not got, "answered: " + fmt(got[0]) if got else "")

    p.send(mseq + 2, gseq, ACK | PSH, b"7\n")  # the hole: 2 bytes at mseq are missing
    s = p.recv(1)
    check(s and s["flags"] & ACK and s["ack"] == mseq and not s["data"] and s["csum_ok"],
          "got " + fmt(s))

    p.send(mseq, gseq, ACK | PSH, b"5\n")
    s = p.recv(1)
    first = s
    check(s and s["data"] == b"seq=1 sum=5\n" and s["ack"] == mseq + 2 and s["seq"] == gseq
          and s["csum_ok"], "got %s data=%r" % (fmt(s), s and s["data"]))
    mseq += 2

    # Do not acknowledge: the answer must come again, later and later.
    r1 = p.recv(1.5)
    r2 = p.recv(2.5)
    ok = first and r1 and r2 and all(x["seq"] == gseq and x["data"] == b"seq=1 sum=5\n"
                                     for x in (r1, r2))
    if ok:
        d1, d2 = r1["t"] - first["t"], r2["t"] - r1["t"]
        ok = 0.15 <= d1 <= 0.6 and d2 >= 1.5 * d1
    check(ok, "retransmissions %s / %s%s" % (fmt(r1), fmt(r2), " after %.0f and %.0f ms" % (
        d1 * 1000, d2 * 1000) if first and r1 and r2 else ""))

    p.send(mseq, gseq + 12, ACK)  # the answer, at last
    p.send(mseq - 2, gseq + 12, ACK | PSH, b"5\n")  # the line again
    s = p.recv(1)
    ok = s and s["flags"] & ACK and s["ack"] == mseq and not s["data"]
    more = p.quiet(0.3)
    check(ok and not any(x["data"] for x in more), "got " + fmt(s) + (
        ", then " + fmt(more[0]) if more else ""))
    gseq += 12

    p.send(mseq, gseq, ACK | PSH, b"-8\n")
    s = p.recv(1)
    check(s and s["data"] == b"seq=2 sum=-3\n" and s["ack"] == mseq + 3,
          "got %s data=%r" % (fmt(s), s and s["data"]))
    mseq += 3
    gseq += len(s["data"]) if s else 0

    p.send(mseq, gseq, ACK | FIN)
    s = p.recv(1)
    ok = s and s["flags"] & FIN and s["ack"] == mseq + 1 and s["seq"] == gseq
    check(ok, "got " + fmt(s))
    p.send(mseq + 1, gseq + 1, ACK)
    time.sleep(0.05)

    p.send(mseq + 1, gseq + 1, ACK | PSH, b"1\n")
    s = p.recv(1)
    check(s and s["flags"] & RST and s["seq"] == gseq + 1, "got " + fmt(s))

    closed = p.gport + 1 if p.gport < 65535 else p.gport - 1
    p.send(isn, 0, SYN, dport=closed)
    s = p.recv(1, sport=closed)
    check(s and s["flags"] == RST | ACK and s["ack"] == (isn + 1) & 0xFFFFFFFF,
          "got " + fmt(s))

    p.port += 1  # a new connection that shuts its window
    isn = random.getrandbits(32)
    p.send(isn, 0, SYN)
    s = p.recv(2)
    if not s or s["flags"] != SYN | ACK:
        check(False, "no SYN-ACK: " + fmt(s))
        return report(results)
    gseq, mseq = s["seq"] + 1, (isn + 1) & 0xFFFFFFFF
    p.send(mseq, gseq, ACK, win=0)
    p.send(mseq, gseq, ACK | PSH, b"5\n", win=0)
    a = p.recv(1)
    pr1 = p.recv(1.5)
    p.send(mseq + 2, gseq, ACK, win=0)  # the probe's answer: still shut
    pr2 = p.recv(2)
    p.send(mseq + 2, gseq, ACK)  # open
    d = p.recv(1)
    ok = (a and not a["data"] and a["ack"] == mseq + 2 and pr1 and pr2 and d
          and all(x["seq"] == (gseq - 1) & 0xFFFFFFFF and not x["data"] for x in (pr1, pr2))
          and pr2["t"] - pr1["t"] >= 0.3 and d["seq"] == gseq
          and d["data"] == b"seq=1 sum=5\n")
    check(ok, "ack %s, probes %s / %s, then %s" % (fmt(a), fmt(pr1), fmt(pr2), fmt(d)))
    p.send(mseq + 2, 0, RST)
    return report(results)


def report(results):
    for name, why in zip(NAMES, results):
        print("ok " + name if why is None else "not ok %s: %s" % (name, why))
    return 0 if all(r is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
