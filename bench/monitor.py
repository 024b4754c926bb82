#!/usr/bin/env python3
"""Kiln vs Redis, side by side: SET throughput while a MONITOR client is attached.

Usage:
    python3 bench/monitor.py            # 200,000 requests a row
    python3 bench/monitor.py --quick    # 50,000
    python3 bench/monitor.py --no-build # use the existing target/release/kiln-server

What it does, for each server (fresh processes, same machine, same load):
  redis-benchmark's SET test (50 clients, random keys -r 100000), without pipelining and
  with -P 16, three ways: with no monitor (the baseline), and with one MONITOR client
  attached whose connection a thread drains as fast as it can (every command becomes a
  line of the feed: formatting, quoting and fanning it out is the cost measured). The
  servers alternate, and the order flips every repetition, so that machine noise hits
  both alike. Server CPU time per request comes from /proc/<pid>/stat, as in compare.py.

Ratios are Kiln / Redis: above 1 means Kiln served more requests per second.
"""

import argparse
import atexit
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the side-by-side harness: servers, redis-benchmark, tables)
from compare import Bench, Server, fmt, ratio, run_benchmark, table  # noqa: E402


class Monitor:
    """One MONITOR connection, drained by a thread; counts the bytes it received."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        if not self.sock.recv(5).startswith(b"+OK"):
            raise SystemExit("MONITOR was refused")
        self.bytes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                got = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            if not got:
                return
            self.bytes += len(got)

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="50,000 requests a row")
    p.add_argument("--requests", type=int, help="requests a row (default 200000)")
    p.add_argument("--reps", type=int, default=2, help="runs per server and row")
    p.add_argument("--threads", type=int, default=0, help="kiln-server --threads")
    p.add_argument("--no-build", action="store_true", help="use the existing release binary")
    args = p.parse_args()
    requests = args.requests or (50000 if args.quick else 200000)
    atexit.register(compare.cleanup)
    kiln_bin = compare.release_binary(args.no_build)
    kiln = Server("kiln", kiln_bin, ["--threads", str(args.threads)]).start()
    redis = Server("redis", "redis-server").start()
    bench = Bench("SET", test="set")
    rows = []
    try:
        for pipeline in (1, 16):
            for monitored in (False, True):
                runs = {"kiln": [], "redis": []}
                for rep in range(args.reps):
                    order = (kiln, redis) if rep % 2 == 0 else (redis, kiln)
                    for server in order:
                        mon = Monitor(server.port) if monitored else None
                        try:
                            print(f"{server.name}: SET -P {pipeline}"
                                  f"{' with MONITOR' if monitored else ''}...", flush=True)
                            runs[server.name].append(
                                run_benchmark(server, bench, requests, pipeline, 50, 100000))
                        finally:
                            if mon:
                                mon.close()
                k = max(r for r, _ in runs["kiln"])
                r = max(r for r, _ in runs["redis"])
                kc = min(c for _, c in runs["kiln"])
                rc = min(c for _, c in runs["redis"])
                label = f"SET -P {pipeline}" + (" + MONITOR" if monitored else "")
                rows.append((label, fmt(k, ",.0f"), fmt(r, ",.0f"), fmt(ratio(k, r), ".2f"),
                             fmt(kc, ".2f"), fmt(rc, ".2f")))
    finally:
        kiln.stop()
        redis.stop()
    text = table(
        f"SET throughput with a draining MONITOR client: {requests:,} requests, 50 clients "
        f"(best of {args.reps})",
        ["row", "kiln req/s", "redis req/s", "kiln/redis", "kiln CPU µs/req",
         "redis CPU µs/req"], rows)
    compare.save_report("monitor", text)


if __name__ == "__main__":
    main()
