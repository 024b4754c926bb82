#!/usr/bin/env python3
"""Kiln vs Redis, side by side: GET throughput with client-side caching (tracking) on.

Usage:
    python3 bench/tracking.py                 # 3 alternating runs a server, 10 s each
    python3 bench/tracking.py --quick         # 2 runs a server, 3 s each
    python3 bench/tracking.py --pipeline 16   # 16 GETs in flight per connection
    python3 bench/tracking.py --requests 500000 --write-ratio 0
    python3 bench/tracking.py --kiln /path/to/kiln-server

What it does, for each run (a fresh server each time, Kiln and Redis alternating, the order
flipping every repetition so that machine noise hits both alike):
  1. starts the server with `--save '' --appendonly no` on a free loopback port
     (KILN_BENCH_PORTS=LO-HI restricts the ports, as in compare.py) and preloads
     --keyspace keys (`key:0` .. `key:N-1`, 16-byte values) with pipelined SETs;
  2. opens --clients reader connections (default 50), each sending `HELLO 3` and
     `CLIENT TRACKING ON` (default mode: the server remembers every key the connection
     read and sends it an invalidation push when one of them changes), and a few plain
     RESP2 writer connections (ceil(readers * --write-ratio), at least one a process);
  3. the readers send GETs of random keys, --pipeline at a time (default 1: one request in
     flight per connection), and read every reply and every `>` invalidation push that
     arrives in between; the writers SET random keys at --write-ratio SETs per GET served
     (default 0.05), so that invalidations actually flow;
  4. measures for --seconds (after a warm-up second) or until --requests GETs are served.

The load comes from --procs driver processes (default: the number of cores), each running a
selectors (epoll) loop over its share of the connections with raw sockets and a small
hand-written RESP reader, so that the driver is as cheap as Python allows. redis-benchmark
can't do this: it cannot turn tracking on per connection, nor read pushes.

Reported per server: GETs per second; invalidation push messages (and the keys in them)
received per second; server CPU time per request (utime+stime of the server process from
/proc/<pid>/stat, before and after, divided by GETs + SETs served); and the Kiln/Redis
ratios (best run of each server: highest GET/s, lowest CPU). A second table lists every run
with the driver's own CPU use (its processes' CPU seconds per second, out of --procs) and
how idle the machine was: when the driver processes sit near 1.0 each and the machine has
no idle time left, the driver (or the machine), not the server, set the pace.

Ratios are Kiln / Redis: above 1 means Kiln served more GETs per second (or used more CPU
per request, in the CPU column).
"""

import argparse
import atexit
import math
import multiprocessing as mp
import os
import random
import selectors
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the side-by-side harness: servers, ports, tables)
from compare import Server, cpu_ticks, fmt, ratio, table  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
VALUE = b"v" * 16
POOL = 1 << 16  # pre-encoded commands per driver process, cycled through


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


# --- a minimal RESP2/RESP3 reader ------------------------------------------------------

AGGREGATE = {ord("*"), ord("~"), ord(">")}
PAIRS = {ord("%"), ord("|")}
BLOBS = {ord("$"), ord("="), ord("!")}


def skip(buf, pos):
    """End of the RESP value starting at `pos` in `buf`, or -1 if it is incomplete."""
    if pos >= len(buf):
        return -1
    t = buf[pos]
    e = buf.find(b"\r\n", pos)
    if e < 0:
        return -1
    if t in BLOBS:
        n = int(buf[pos + 1:e])
        if n < 0:
            return e + 2
        end = e + 4 + n
        return end if end <= len(buf) else -1
    if t in AGGREGATE or t in PAIRS:
        n = int(buf[pos + 1:e])
        if t in PAIRS:
            n *= 2
        p = e + 2
        for _ in range(max(n, 0)):
            p = skip(buf, p)
            if p < 0:
                return -1
        if t == ord("|"):  # an attribute comes before the reply it annotates
            return skip(buf, p)
        return p
    return e + 2  # + - : _ , # ( and the like: one line


def invalidated_keys(buf, pos, end):
    """Keys in the push frame buf[pos:end] if it is an invalidation (-1 for a flush: the
    push carries a null), else None."""
    if not buf.startswith(b">2\r\n$10\r\ninvalidate\r\n", pos):
        return None
    p = pos + 21
    if buf[p] == ord("*"):
        e = buf.find(b"\r\n", p)
        n = int(buf[p + 1:e])
        return n if n >= 0 else -1
    return -1


def read_replies(sock, n):
    """Reads n replies from a blocking socket (setup and preload only); returns errors."""
    buf = b""
    pos = 0
    errors = []
    while n:
        end = skip(buf, pos)
        if end < 0:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf = buf[pos:] + chunk
            pos = 0
            continue
        if buf[pos] == ord(">"):
            pos = end
            continue
        if buf[pos] == ord("-"):
            errors.append(buf[pos + 1:end - 2].decode(errors="replace"))
        pos = end
        n -= 1
    return errors


def preload(port, keyspace, batch=5000):
    s = socket.create_connection(("127.0.0.1", port))
    try:
        for lo in range(0, keyspace, batch):
            hi = min(lo + batch, keyspace)
            s.sendall(b"".join(encode(b"SET", b"key:%d" % i, VALUE) for i in range(lo, hi)))
            errors = read_replies(s, hi - lo)
            if errors:
                raise SystemExit(f"preload SET failed: {errors[0]}")
    finally:
        s.close()


# --- the driver process ----------------------------------------------------------------


class Reader:
    __slots__ = ("sock", "buf", "inflight", "left", "idx")


class Writer:
    __slots__ = ("sock", "buf", "inflight", "idx")


def driver(pipe, port, readers, writers, opts, seed):
    """One driver process: `readers` tracking connections and `writers` SET connections
    in one epoll loop. Reports its counters over `pipe`."""
    try:
        _driver(pipe, port, readers, writers, opts, seed)
    except Exception as e:  # report instead of hanging the parent
        pipe.send(("error", f"{type(e).__name__}: {e}"))


def _driver(pipe, port, nreaders, nwriters, opts, seed):
    rng = random.Random(seed)
    keyspace = opts["keyspace"]
    depth = opts["pipeline"]
    wratio = opts["write_ratio"]
    gets_pool = [encode(b"GET", b"key:%d" % rng.randrange(keyspace)) for _ in range(POOL)]
    sets_pool = [encode(b"SET", b"key:%d" % rng.randrange(keyspace), VALUE)
                 for _ in range(POOL)]
    # Pre-joined batches of `depth` GETs, so a send is one slice of one bytes object.
    batches = [b"".join(gets_pool[(i + j) % POOL] for j in range(depth)) for i in range(POOL)]

    readers = []
    hello = encode(b"HELLO", b"3") + encode(b"CLIENT", b"TRACKING", b"ON")
    for i in range(nreaders):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(hello)
        errors = read_replies(s, 2)
        if errors:
            raise RuntimeError(f"HELLO 3 / CLIENT TRACKING ON: {errors[0]}")
        r = Reader()
        r.sock, r.buf, r.inflight, r.idx = s, b"", 0, rng.randrange(POOL)
        r.left = -1
        readers.append(r)
    writers = []
    for i in range(nwriters):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        w = Writer()
        w.sock, w.buf, w.inflight, w.idx = s, b"", 0, rng.randrange(POOL)
        writers.append(w)
    quota = opts["requests"]
    if quota:
        # This process's share of the GETs, split over its readers, whole batches.
        for i, r in enumerate(readers):
            r.left = quota // nreaders + (1 if i < quota % nreaders else 0)
    # left: GETs still to send; -1 without a quota (--seconds), -2 once the quota is done.

    pipe.send(("ready",))
    start_at, measure_at, deadline = pipe.recv()

    sel = selectors.EpollSelector()
    for r in readers:
        r.sock.setblocking(False)
        sel.register(r.sock, selectors.EVENT_READ, r)
    for w in writers:
        w.sock.setblocking(False)
        sel.register(w.sock, selectors.EVENT_READ, w)

    while time.monotonic() < start_at:
        time.sleep(0.001)

    gets = sets = pushes = inval_keys = errors = 0
    active = 0
    for r in readers:
        if r.left != 0:
            n = depth if r.left < 0 else min(depth, r.left)
            r.sock.send(batches[r.idx] if n == depth else
                        b"".join(gets_pool[(r.idx + j) % POOL] for j in range(n)))
            r.idx = (r.idx + n) % POOL
            r.inflight = n
            if r.left > 0:
                r.left -= n
            active += 1
        else:
            r.left = -2  # a quota of nothing: done from the start
    snap = None
    cpu0 = time.process_time()
    if measure_at <= start_at:
        snap = (0, 0, 0, 0, cpu0, time.monotonic())
    monotonic = time.monotonic
    select = sel.select
    wlimit = max(4 * depth, 16)
    loop_deadline = deadline if deadline else float("inf")
    while active > 0:
        now = monotonic()
        if snap is None and now >= measure_at:
            snap = (gets, sets, pushes, inval_keys, time.process_time(), now)
        if now >= loop_deadline:
            break
        # Writers: keep SETs at wratio per GET served, a few in flight at most.
        if writers:
            want = int(gets * wratio) - sets
            for w in writers:
                if want <= 0:
                    break
                if w.inflight == 0:
                    n = min(want, wlimit)
                    w.sock.send(b"".join(sets_pool[(w.idx + j) % POOL] for j in range(n)))
                    w.idx = (w.idx + n) % POOL
                    w.inflight = n
                    sets += n  # counted when sent; the gate needs it now
                    want -= n
        for key, _ in select(0.05):
            c = key.data
            data = c.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("server closed a connection")
            buf = c.buf + data if c.buf else data
            size = len(buf)
            pos = 0
            done = 0
            while pos < size:
                t = buf[pos]
                if t == 36:  # $: a GET's reply, the hot path
                    e = buf.find(b"\r\n", pos)
                    if e < 0:
                        break
                    n = int(buf[pos + 1:e])
                    end = e + 4 + n if n >= 0 else e + 2
                    if end > size:
                        break
                    pos = end
                    done += 1
                    continue
                end = skip(buf, pos)
                if end < 0:
                    break
                if t == 62:  # >: a push
                    pushes += 1
                    k = invalidated_keys(buf, pos, end)
                    if k and k > 0:
                        inval_keys += k
                elif t == 45:  # -: an error reply
                    errors += 1
                    done += 1
                else:
                    done += 1
                pos = end
            c.buf = buf[pos:] if pos < size else b""
            c.inflight -= done
            if c.__class__ is Reader:
                gets += done
                if c.inflight == 0:
                    if c.left == 0:
                        # Its quota is served (pushes may still arrive: read, not counted
                        # again).
                        c.left = -2
                        active -= 1
                        continue
                    if c.left == -2:
                        continue
                    n = depth if c.left < 0 else min(depth, c.left)
                    c.sock.send(batches[c.idx] if n == depth else
                                b"".join(gets_pool[(c.idx + j) % POOL] for j in range(n)))
                    c.idx = (c.idx + n) % POOL
                    c.inflight = n
                    if c.left > 0:
                        c.left -= n
    end_time = monotonic()
    cpu1 = time.process_time()
    if snap is None:
        snap = (gets, sets, pushes, inval_keys, cpu1, end_time)
    g0, s0, p0, k0, c0, t0 = snap
    result = {
        "gets": gets - g0, "sets": sets - s0, "pushes": pushes - p0,
        "inval_keys": inval_keys - k0, "cpu": cpu1 - c0, "t0": t0, "t1": end_time,
        "errors": errors,
    }
    pipe.send(("done", result))
    for r in readers:
        r.sock.close()
    for w in writers:
        w.sock.close()


# --- one run ---------------------------------------------------------------------------


def split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def machine_times():
    """(idle+iowait, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields)


def run_once(server, args, seed):
    ctx = mp.get_context("fork")
    procs = max(1, min(args.procs, args.clients))
    readers = split(args.clients, procs)
    nwriters = math.ceil(args.clients * args.write_ratio) if args.write_ratio > 0 else 0
    writers = [max(1, w) if args.write_ratio > 0 else 0 for w in split(nwriters, procs)]
    gets_share = split(args.requests, procs) if args.requests else [0] * procs
    pipes, workers = [], []
    for i in range(procs):
        parent, child = ctx.Pipe()
        opts = {"keyspace": args.keyspace, "pipeline": args.pipeline,
                "write_ratio": args.write_ratio, "requests": gets_share[i]}
        p = ctx.Process(target=driver, args=(child, server.port, readers[i], writers[i],
                                             opts, seed * 1000 + i), daemon=True)
        p.start()
        pipes.append(parent)
        workers.append(p)
    try:
        for pipe in pipes:
            msg = pipe.recv()
            if msg[0] != "ready":
                raise SystemExit(f"driver failed on {server.name}: {msg[1]}")
        start_at = time.monotonic() + 0.2
        if args.requests:
            measure_at, deadline = start_at, 0
        else:
            measure_at = start_at + args.warmup
            deadline = measure_at + args.seconds
        for pipe in pipes:
            pipe.send((start_at, measure_at, deadline))
        # Server CPU over the measured window: sample at its start, and at its end (the
        # deadline, or when the last driver finished its quota).
        time.sleep(max(0.0, measure_at - time.monotonic()))
        ticks0 = cpu_ticks(server.pid)
        idle0, total0 = machine_times()
        t0 = time.monotonic()
        if deadline:
            time.sleep(max(0.0, deadline - time.monotonic()))
            ticks1 = cpu_ticks(server.pid)
            idle1, total1 = machine_times()
            t1 = time.monotonic()
        results = []
        for pipe in pipes:
            msg = pipe.recv()
            if msg[0] != "done":
                raise SystemExit(f"driver failed on {server.name}: {msg[1]}")
            results.append(msg[1])
        if not deadline:
            ticks1 = cpu_ticks(server.pid)
            idle1, total1 = machine_times()
            t1 = max(r["t1"] for r in results)
    finally:
        for p in workers:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    wall = t1 - t0
    tot = {k: sum(r[k] for r in results)
           for k in ("gets", "sets", "pushes", "inval_keys", "cpu", "errors")}
    if tot["errors"]:
        print(f"  warning: {tot['errors']} error replies from {server.name}", flush=True)
    requests = tot["gets"] + tot["sets"]
    server_cpu = (ticks1 - ticks0) / TICK
    return {
        "gets_s": tot["gets"] / wall,
        "sets_s": tot["sets"] / wall,
        "pushes_s": tot["pushes"] / wall,
        "keys_s": tot["inval_keys"] / wall,
        "cpu_us": server_cpu * 1e6 / requests if requests else None,
        "server_cores": server_cpu / wall,
        "driver_cores": tot["cpu"] / wall,
        "procs": procs,
        "idle": (idle1 - idle0) / (total1 - total0) if total1 > total0 else None,
        "wall": wall,
    }


def pct(v):
    return "n/a" if v is None else f"{v * 100:.0f}%"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 runs a server of 3 s")
    p.add_argument("--clients", type=int, default=50, help="tracking reader connections")
    p.add_argument("--seconds", type=float, help="measured seconds a run (default 10, "
                   "--quick 3)")
    p.add_argument("--requests", type=int, help="GETs a run instead of --seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring "
                   "(--seconds runs only)")
    p.add_argument("--pipeline", type=int, default=1, help="GETs in flight per connection")
    p.add_argument("--write-ratio", type=float, default=0.05,
                   help="SETs per GET served, from separate RESP2 connections (0: none)")
    p.add_argument("--keyspace", type=int, default=100000, help="keys preloaded and read")
    p.add_argument("--reps", type=int, help="runs per server (default 3, --quick 2)")
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1,
                   help="driver processes (default: the number of cores)")
    p.add_argument("--threads", type=int, default=0, help="kiln-server --threads")
    p.add_argument("--kiln", default=None, help="kiln-server binary "
                   "(default target/release/kiln-server)")
    p.add_argument("--no-build", action="store_true",
                   help="accepted for symmetry with compare.py; this script never builds")
    args = p.parse_args()
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 10.0
    reps = args.reps or (2 if args.quick else 3)
    if args.pipeline < 1 or args.clients < 1:
        raise SystemExit("--pipeline and --clients must be at least 1")
    compare.prepare(tools=("redis-server",))
    atexit.register(compare.cleanup)
    kiln_bin = args.kiln or str(compare.ROOT / "target" / "release" / "kiln-server")
    if not os.access(kiln_bin, os.X_OK):
        raise SystemExit(f"{kiln_bin} not found: build it (cargo build --release) or "
                         "pass --kiln")
    specs = {"kiln": (kiln_bin, ["--threads", str(args.threads)]),
             "redis": ("redis-server", [])}
    runs = {"kiln": [], "redis": []}
    for rep in range(reps):
        order = ("kiln", "redis") if rep % 2 == 0 else ("redis", "kiln")
        for name in order:
            binary, extra = specs[name]
            server = Server(name, binary, extra).start()
            try:
                preload(server.port, args.keyspace)
                what = (f"{args.requests:,} GETs" if args.requests
                        else f"{args.seconds:g} s")
                print(f"{name} (run {rep + 1}/{reps}): GET with tracking, {args.clients} "
                      f"clients, -P {args.pipeline}, {what}...", flush=True)
                r = run_once(server, args, seed=rep)
            finally:
                server.stop()
            runs[name].append(r)
            print(f"  {r['gets_s']:,.0f} GET/s, {r['pushes_s']:,.0f} invalidations/s, "
                  f"{fmt(r['cpu_us'], '.2f')} µs CPU/req; driver {r['driver_cores']:.2f} "
                  f"of {r['procs']} procs, server {r['server_cores']:.2f} cores, machine "
                  f"idle {pct(r['idle'])}", flush=True)

    def best(name, key, pick):
        vals = [r[key] for r in runs[name] if r[key] is not None]
        return pick(vals) if vals else None

    k, r = best("kiln", "gets_s", max), best("redis", "gets_s", max)
    ki, ri = best("kiln", "pushes_s", max), best("redis", "pushes_s", max)
    kk, rk = best("kiln", "keys_s", max), best("redis", "keys_s", max)
    kc, rc = best("kiln", "cpu_us", min), best("redis", "cpu_us", min)
    label = f"GET tracking -P {args.pipeline}"
    writes = (f"{args.write_ratio:g} SETs per GET from {math.ceil(args.clients * args.write_ratio)}"
              f"+ RESP2 writers" if args.write_ratio > 0 else "no writers")
    load = (f"{args.requests:,} GETs" if args.requests
            else f"{args.seconds:g} s after {args.warmup:g} s warm-up")
    text = table(
        f"GET with tracking on (RESP3, CLIENT TRACKING ON): {args.clients} clients, "
        f"{args.keyspace:,} keys, {writes}, {load} (best of {reps})",
        ["row", "kiln GET/s", "redis GET/s", "kiln/redis", "kiln inval/s", "redis inval/s",
         "kiln keys/s", "redis keys/s", "kiln CPU µs/req", "redis CPU µs/req",
         "kiln/redis"],
        [(label, fmt(k, ",.0f"), fmt(r, ",.0f"), fmt(ratio(k, r), ".2f"),
          fmt(ki, ",.0f"), fmt(ri, ",.0f"), fmt(kk, ",.0f"), fmt(rk, ",.0f"),
          fmt(kc, ".2f"), fmt(rc, ".2f"), fmt(ratio(kc, rc), ".2f"))])
    detail = table(
        f"Every run (inval/s: invalidation pushes received; CPU µs/req: server CPU over "
        f"GETs + SETs; driver: CPU s/s of {runs['kiln'][0]['procs']} driver processes; "
        f"{os.cpu_count()} cores)",
        ["run", "GET/s", "SET/s", "inval/s", "keys/s", "CPU µs/req", "server cores",
         "driver cores", "machine idle"],
        [(f"{name} {i + 1}", fmt(x["gets_s"], ",.0f"), fmt(x["sets_s"], ",.0f"),
          fmt(x["pushes_s"], ",.0f"), fmt(x["keys_s"], ",.0f"), fmt(x["cpu_us"], ".2f"),
          fmt(x["server_cores"], ".2f"), fmt(x["driver_cores"], ".2f"),
          pct(x["idle"]))
         for name in ("kiln", "redis") for i, x in enumerate(runs[name])])
    compare.save_report("tracking", text + "\n\n" + detail)


if __name__ == "__main__":
    main()
