#!/usr/bin/env python3
"""udp-probe.py - raw-socket helpers for the socket tests (root only; loopback only).

  capture4 PORT COUNT TIMEOUT_S   print one JSON line per UDP/IPv4 datagram to PORT as the kernel
                                  delivered it (IP ID, DF, ...): an AF_INET raw socket sees the IP
                                  header, no AF_PACKET or tcpdump needed
  capture6 PORT COUNT TIMEOUT_S   the same for UDP/IPv6 (the UDP header and its checksum)
  send6-zero-csum DST PORT TEXT   send TEXT to [DST]:PORT with UDP checksum 0 (UDP_NO_CHECK6_TX),
                                  the way kernel rxe sends, and print the JSON of what was sent

Capture modes print {"ready": true} once listening, then exit after COUNT datagrams or TIMEOUT_S.
"""
import ctypes
import json
import socket
import struct
import sys
import time

SOL_UDP = 17
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33


def only_udp_port4(s, port):
    """Kernel-side filter (classic BPF) on an AF_INET raw UDP socket: keep datagrams to `port` only.

    A raw socket sees every UDP datagram of the host; without the filter, other traffic (parallel
    tests, GSO blasts, QEMU guests) can fill its buffer and the datagrams to `port` are dropped."""
    prog = [
        (0xB1, 0, 0, 0),           # ldxb 4*([0]&0xf): X = IP header length
        (0x48, 0, 0, 2),           # ldh [x + 2]: the UDP destination port
        (0x15, 0, 1, port),        # jeq port
        (0x06, 0, 0, 0xFFFFFFFF),  # ret all
        (0x06, 0, 0, 0),           # ret 0: drop
    ]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    return buf  # keep the program alive as long as the socket
UDP_NO_CHECK6_TX = 101


def out(obj):
    print(json.dumps(obj), flush=True)


def capture(family, port, count, timeout):
    s = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_UDP)
    keep = only_udp_port4(s, port) if family == socket.AF_INET else None
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.settimeout(0.2)
    out({"ready": True})
    seen, end = 0, time.time() + timeout
    while seen < count and time.time() < end:
        try:
            pkt = s.recv(65535)
        except socket.timeout:
            continue
        if family == socket.AF_INET:  # IPv4 raw sockets deliver the IP header
            ihl = (pkt[0] & 15) * 4
            ident, frag = struct.unpack("!HH", pkt[4:8])
            sport, dport, ulen, csum = struct.unpack("!HHHH", pkt[ihl:ihl + 8])
            if dport != port:
                continue
            out({"id": ident, "df": bool(frag & 0x4000), "mf": bool(frag & 0x2000), "ttl": pkt[8],
                 "src": socket.inet_ntoa(pkt[12:16]), "dst": socket.inet_ntoa(pkt[16:20]),
                 "sport": sport, "dport": dport, "udpChecksum": csum})
        else:  # IPv6 raw sockets deliver from the UDP header on
            sport, dport, ulen, csum = struct.unpack("!HHHH", pkt[0:8])
            if dport != port:
                continue
            out({"sport": sport, "dport": dport, "udpChecksum": csum, "payload": pkt[8:ulen].decode(errors="replace")})
        seen += 1


def send6_zero_csum(dst, port, text):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(SOL_UDP, UDP_NO_CHECK6_TX, 1)
    s.sendto(text.encode(), (dst, port))
    out({"sent": text, "sport": s.getsockname()[1]})


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode in ("capture4", "capture6"):
        capture(socket.AF_INET if mode == "capture4" else socket.AF_INET6, int(argv[2]), int(argv[3]), float(argv[4]))
    elif mode == "send6-zero-csum":
        send6_zero_csum(argv[2], int(argv[3]), argv[4])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
