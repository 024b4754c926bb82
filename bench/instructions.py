#!/usr/bin/env python3
"""Instructions per request on the connection path, under callgrind: a stable number.

Wall time and even CPU time move with whatever else the machine runs; the instructions a
server executes for a fixed workload do not. This runs kiln-server binaries (one per
--binary, e.g. a baseline build and the current one) under `valgrind --tool=callgrind`,
one worker thread, collecting only inside the per-connection task
(`kiln::net::connection`, which covers reading, parsing, executing and writing replies;
start-up, the cron and other threads are left out), and drives the same redis-benchmark
workload into each, one fresh server per row:

    SET, GET, INCR, LPUSH, RPOP, SADD, HSET    -P 16, 8 clients, random keys (-r 100000)
    SET, GET unpipelined                       1 client

It prints instructions per request for each binary and, with two binaries, the ratio
second/first per row. Each row is measured --repeat times (3) and the smallest count is
kept: the connection task's work per request is fixed, and what varies between runs is
only extra wake-ups (a read that finds nothing yet), which timing adds and never removes.
Pipelined rows repeat within about 1%; unpipelined ones, where every request is a wake-up,
within a few percent. Usage:

    python3 bench/instructions.py                                  # target/release/kiln-server
    python3 bench/instructions.py --binary OLD --binary NEW        # compare two builds
    python3 bench/instructions.py --requests 20000                 # per pipelined row

Needs valgrind and redis-benchmark/redis-cli on the PATH. Build with
`cargo build --release -p kiln-server` (release has debug line tables, so callgrind
resolves the function names it filters on).
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

ROWS = [
    # (label, redis-benchmark test, pipeline, clients)
    ("SET -P16", "set", 16, 8),
    ("GET -P16", "get", 16, 8),
    ("INCR -P16", "incr", 16, 8),
    ("LPUSH -P16", "lpush", 16, 8),
    ("RPOP -P16", "rpop", 16, 8),
    ("SADD -P16", "sadd", 16, 8),
    ("HSET -P16", "hset", 16, 8),
    ("SET", "set", 1, 1),
    ("GET", "get", 1, 1),
    # A script row: the script is loaded first (SCRIPT LOAD), then EVALSHA'd.
    ("EVALSHA INCR -P16", "script:return redis.call('INCR', KEYS[1])", 16, 8),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during start-up")
        r = subprocess.run(
            ["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True
        )
        if r.stdout.strip() == "PONG":
            return
        time.sleep(0.2)
    raise RuntimeError("server did not answer PING")


def measure(binary, test, pipeline, clients, requests):
    """Instructions collected inside the connection task for `requests` requests."""
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "callgrind.out")
        proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=" + out,
                "--toggle-collect=kiln::net::connection*",
                binary,
                "--port", str(port),
                "--threads", "1",
                "--save", "",
                "--appendonly", "no",
                "--dir", d,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(port, proc)
            # The readiness PINGs ran in connection tasks too: count them out by
            # measuring from a zeroed counter.
            subprocess.run(
                ["callgrind_control", "--zero", str(proc.pid)],
                capture_output=True,
                check=True,
            )
            if test.startswith("script:"):
                sha = subprocess.run(
                    ["redis-cli", "-p", str(port), "SCRIPT", "LOAD", test[len("script:"):]],
                    capture_output=True, text=True, check=True,
                ).stdout.strip()
                load = ["EVALSHA", sha, "1", "key:__rand_int__"]
            else:
                load = ["-t", test]
            subprocess.run(
                [
                    "redis-benchmark", "-p", str(port),
                    "-n", str(requests), "-P", str(pipeline), "-c", str(clients),
                    "-r", "100000", "-q", *load,
                ],
                capture_output=True,
                check=True,
            )
            subprocess.run(
                ["redis-cli", "-p", str(port), "SHUTDOWN", "NOSAVE"], capture_output=True
            )
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        total = 0
        for name in os.listdir(d):
            if not name.startswith("callgrind.out"):
                continue
            with open(os.path.join(d, name)) as f:
                text = f.read()
            # After --zero, the last dump (at exit) holds what ran since the zeroing.
            m = re.findall(r"^(?:summary|totals):\s*(\d+)", text, re.M)
            if m:
                total = max(total, int(m[-1]))
        # redis-benchmark's own setup (CONFIG GET save/appendonly per client) and the
        # SHUTDOWN are a fixed handful of commands: small against the requests.
        return total / requests


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", action="append", help="kiln-server binary (repeatable)")
    ap.add_argument("--requests", type=int, default=20000, help="per pipelined row")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row and binary (min kept)")
    ap.add_argument("--only", help="only the rows whose label contains this text")
    args = ap.parse_args()
    binaries = args.binary or ["target/release/kiln-server"]
    for b in binaries:
        if not os.access(b, os.X_OK):
            sys.exit(f"not an executable: {b}")
    print(f"instructions per request inside kiln::net::connection (callgrind, 1 thread)")
    head = f"{'row':<12}" + "".join(f"{'binary ' + str(i + 1):>14}" for i in range(len(binaries)))
    if len(binaries) == 2:
        head += f"{'2/1':>8}"
    print(head)
    for label, test, pipeline, clients in ROWS:
        if args.only and args.only not in label:
            continue
        n = args.requests if pipeline > 1 else max(1000, args.requests // 5)
        vals = [
            min(measure(b, test, pipeline, clients, n) for _ in range(args.repeat))
            for b in binaries
        ]
        line = f"{label:<12}" + "".join(f"{v:>14.0f}" for v in vals)
        if len(vals) == 2 and vals[0] > 0:
            line += f"{vals[1] / vals[0]:>8.3f}"
        print(line, flush=True)
    for i, b in enumerate(binaries):
        print(f"binary {i + 1}: {b}")


if __name__ == "__main__":
    main()
