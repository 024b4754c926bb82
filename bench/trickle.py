#!/usr/bin/env python3
"""Kiln vs Redis, side by side: server CPU time for one big request trickled in slowly.

Usage:
    python3 bench/trickle.py            # SADD of 800,000 members (9.6 MB) at 1.3 MB/s
    python3 bench/trickle.py --quick    # 100,000 members

What it does, for each server in turn (fresh processes, same machine, same bytes):
  one connection sends `SADD trickle <m1> ... <mN>` (6-digit members, 12 bytes each on the
  wire) in chunks of --chunk bytes, paced to --rate MB/s, then reads the reply (the member
  count). The server's CPU time (utime + stime from /proc/<pid>/stat, all threads) is read
  before the first byte and after the reply. A parser that rescans the pending request on
  every read spends time quadratic in the request's size here; one that resumes spends
  about what parsing and running the request once costs. Each chunk size is one row; the
  servers alternate, and the order flips every repetition.

Ratios are Kiln / Redis: below 1 means Kiln used less CPU.
"""

import argparse
import atexit
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the side-by-side harness: servers, RESP client, tables)
from compare import CLK_TCK, Server, cpu_ticks, fmt, ratio, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def sadd_wire(members):
    """`SADD trickle 100000 100001 ...` as one multibulk request."""
    parts = [b"*%d\r\n$4\r\nSADD\r\n$7\r\ntrickle\r\n" % (members + 2)]
    parts += [b"$6\r\n%d\r\n" % (100000 + i) for i in range(members)]
    return b"".join(parts)


def trickle(server, wire, chunk, rate, members):
    """Sends `wire` in `chunk`-byte pieces at `rate` bytes/s; returns (CPU s, wall s)."""
    server.call("DEL", "trickle")
    s = socket.create_connection(("127.0.0.1", server.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        before = cpu_ticks(server.pid)
        t0 = time.perf_counter()
        for at in range(0, len(wire), chunk):
            # Keep to the schedule: byte `at` leaves no earlier than at / rate seconds.
            ahead = t0 + at / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            s.sendall(wire[at:at + chunk])
        reply = b""
        while not reply.endswith(b"\r\n"):
            got = s.recv(64)
            if not got:
                raise SystemExit(f"{server.name} closed the connection")
            reply += got
        wall = time.perf_counter() - t0
        cpu = (cpu_ticks(server.pid) - before) / CLK_TCK
    finally:
        s.close()
    if reply != b":%d\r\n" % members:
        raise SystemExit(f"{server.name} replied {reply!r}")
    return cpu, wall


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100,000 members")
    p.add_argument("--members", type=int, help="SADD members (default 800000)")
    p.add_argument("--rate", type=float, default=1.3, help="MB/s (default 1.3)")
    p.add_argument("--chunks", default="16384,1024",
                   help="chunk sizes in bytes, one row each (default 16384,1024)")
    p.add_argument("--reps", type=int, default=1, help="runs per server and row")
    p.add_argument("--threads", type=int, default=0, help="kiln-server --threads")
    p.add_argument("--no-build", action="store_true", help="use the existing release binary")
    args = p.parse_args()
    members = args.members or (100000 if args.quick else 800000)
    atexit.register(compare.cleanup)
    kiln_bin = compare.release_binary(args.no_build)
    wire = sadd_wire(members)
    rate = args.rate * 1e6
    kiln = Server("kiln", kiln_bin, ["--threads", str(args.threads)]).start()
    redis = Server("redis", "redis-server").start()
    rows = []
    try:
        for chunk in (int(c) for c in args.chunks.split(",")):
            runs = {"kiln": [], "redis": []}
            for rep in range(args.reps):
                order = (kiln, redis) if rep % 2 == 0 else (redis, kiln)
                for server in order:
                    print(f"{server.name}: {len(wire):,} bytes in {chunk}-byte chunks...",
                          flush=True)
                    runs[server.name].append(trickle(server, wire, chunk, rate, members))
            k = min(c for c, _ in runs["kiln"])
            r = min(c for c, _ in runs["redis"])
            wall = max(w for rs in runs.values() for _, w in rs)
            rows.append((f"{chunk:,}-byte chunks", fmt(k, ".2f"), fmt(r, ".2f"),
                         fmt(ratio(k, r), ".2f"), fmt(wall, ".1f")))
    finally:
        kiln.stop()
        redis.stop()
    text = table(
        f"SADD of {members:,} members ({len(wire) / 1e6:.1f} MB) trickled at "
        f"{args.rate} MB/s: server CPU seconds (least of {args.reps} run(s))",
        ["row", "kiln CPU s", "redis CPU s", "kiln/redis", "wall s"], rows)
    compare.save_report("trickle", text)


if __name__ == "__main__":
    main()
