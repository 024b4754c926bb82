#!/usr/bin/env python3
"""Kiln vs Redis, side by side: RDB save and load, and memory during a background save.

Usage:
    python3 bench/persistence.py            # 1,000,000 keys of mixed types
    python3 bench/persistence.py --quick    # 100,000 keys

What it does, for each server in turn (fresh processes, same data, same machine):
  1. loads the dataset through `redis-cli --pipe`: 60% strings (16-byte keys, 8 to 40-byte
     values, a tenth of them integers), and 10% each of small hashes (5 fields), lists (5
     elements), sets (5 integers: intset) and sorted sets (5 members), a tenth of all keys
     with a TTL;
  2. SAVE: wall time of the command, and the size of the file written;
  3. BGSAVE under a write load: redis-benchmark overwrites random existing keys (SET, 50
     clients, -P 16) while a BGSAVE runs; the memory of the server (Kiln: the process;
     Redis: the process plus its fork child, counted as PSS so shared pages count once) is
     sampled every 10 ms. The table gives the peak, and the peak over the dataset's memory
     before the save (the issue's target: at most 1.2);
  4. start-up load: a new server started on a copy of the SAVE's file, wall time until it
     answers PING with every key loaded (DBSIZE checked).

Ratios are Kiln / Redis; for times, below 1 means Kiln is faster.
"""

import argparse
import atexit
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the side-by-side harness: servers, RESP client, tables)
from compare import Conn, Server, fmt, ratio, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def write_dataset(path, keys, seed=7):
    rnd = random.Random(seed)
    out = []

    def cmd(*args):
        out.append(b"*%d\r\n" % len(args))
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))

    with open(path, "wb") as f:
        for i in range(keys):
            kind = i % 10
            key = b"key:%012d" % i
            if kind < 6:
                if i % 60 == 0:
                    cmd(b"SET", key, str(rnd.randrange(10**9)))
                else:
                    cmd(b"SET", key, b"v" * rnd.randrange(8, 41))
            elif kind == 6:
                cmd(b"HSET", key, b"name", b"kiln", b"n", b"1", b"a", b"bb", b"c", b"ddd",
                    b"e", b"x" * 12)
            elif kind == 7:
                cmd(b"RPUSH", key, b"a", b"bb", b"ccc", b"1", b"22")
            elif kind == 8:
                cmd(b"SADD", key, 1, 2, 3, 400, 50000)
            else:
                cmd(b"ZADD", key, 1, b"a", 2.5, b"b", 3, b"c", 4, b"d", 5, b"e")
            if i % 10 == 3:
                cmd(b"EXPIRE", key, 100000)
            if len(out) > 4096:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))


def pipe_in(server, path):
    with open(path, "rb") as f:
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(server.port), "--pipe"],
            stdin=f, capture_output=True, text=True, timeout=1800,
        )
    if "errors: 0," not in done.stdout:
        raise SystemExit(f"{server.name}: loading failed: {done.stdout}{done.stderr}")


def pss_bytes(pid):
    """PSS of a process and its children (a forked save child), in bytes."""
    total = 0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def wait_bgsave(server):
    while True:
        info = server.call("INFO", "persistence")
        if "rdb_bgsave_in_progress:0" in info:
            return
        time.sleep(0.01)


def measure(name, binary, extra, dataset, keys):
    """Returns dict of measurements for one server."""
    res = {}
    s = Server(name, binary, extra)
    compare.start_with_debug(s)
    try:
        pipe_in(s, dataset)
        n = s.call("DBSIZE")
        assert n == keys, f"{name}: DBSIZE {n} != {keys}"
        workdir = Path(s.call("CONFIG", "GET", "dir")[1])
        t = time.perf_counter()
        s.call("SAVE", timeout=1800)
        res["save"] = time.perf_counter() - t
        rdb = workdir / "dump.rdb"
        res["size"] = rdb.stat().st_size
        # The start-up load reads this file (the BGSAVE below overwrites dump.rdb with
        # data the write load has changed).
        load_dir = tempfile.mkdtemp(prefix=f"kiln-bench-load-{name}-")
        compare._tempdirs.append(load_dir)
        shutil.copy(rdb, Path(load_dir) / "dump.rdb")

        # BGSAVE under a write load over the existing string keys.
        base = pss_bytes(s.pid)
        res["base"] = base
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], pss_bytes(s.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        load = subprocess.Popen(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", str(s.port), "-c", "50", "-P", "16",
             "-n", str(max(keys * 2, 200000)), "-r", str(keys // 10 * 6), "-q",
             "SET", "key:__rand_int__", "overwritten-value"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)
        t = time.perf_counter()
        s.call("BGSAVE")
        wait_bgsave(s)
        res["bgsave"] = time.perf_counter() - t
        load.wait()
        stop.set()
        sampler.join()
        res["peak"] = peak[0]

        # Start-up load of the SAVE's file. A tenth of the keys have a TTL far ahead, so
        # every key loads.
        s.stop()
        t = time.perf_counter()
        s2 = Server(name, binary, extra + ["--dir", load_dir])
        s2.start()
        res["load"] = time.perf_counter() - t
        n = s2.call("DBSIZE")
        assert n == keys, f"{name}: {n} keys after load, not {keys}"
        s2.stop()
    finally:
        s.stop()
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--keys", type=int)
    p.add_argument("--no-build", action="store_true")
    args = p.parse_args()
    atexit.register(compare.cleanup)
    keys = args.keys or (100000 if args.quick else 1000000)
    kiln_bin = compare.release_binary(args.no_build)
    tmp = tempfile.mkdtemp(prefix="kiln-bench-persist-")
    compare._tempdirs.append(tmp)
    dataset = os.path.join(tmp, "data.resp")
    print(f"writing a {keys}-key dataset...", flush=True)
    write_dataset(dataset, keys)
    results = {}
    for name, binary in (("kiln", kiln_bin), ("redis", "redis-server")):
        print(f"{name}...", flush=True)
        results[name] = measure(name, binary, [], dataset, keys)
    k, r = results["kiln"], results["redis"]
    rows = [
        ("SAVE time (s)", fmt(k["save"], ".2f"), fmt(r["save"], ".2f"),
         fmt(ratio(k["save"], r["save"]), ".2f")),
        ("RDB file size (MB)", fmt(k["size"] / 1e6, ".1f"), fmt(r["size"] / 1e6, ".1f"),
         fmt(ratio(k["size"], r["size"]), ".2f")),
        ("start-up load time (s)", fmt(k["load"], ".2f"), fmt(r["load"], ".2f"),
         fmt(ratio(k["load"], r["load"]), ".2f")),
        ("BGSAVE time under writes (s)", fmt(k["bgsave"], ".2f"), fmt(r["bgsave"], ".2f"),
         fmt(ratio(k["bgsave"], r["bgsave"]), ".2f")),
        ("memory before BGSAVE (MB, PSS)", fmt(k["base"] / 1e6, ".0f"),
         fmt(r["base"] / 1e6, ".0f"), fmt(ratio(k["base"], r["base"]), ".2f")),
        ("peak memory during BGSAVE (MB, PSS)", fmt(k["peak"] / 1e6, ".0f"),
         fmt(r["peak"] / 1e6, ".0f"), fmt(ratio(k["peak"], r["peak"]), ".2f")),
        ("peak during BGSAVE / before", fmt(k["peak"] / k["base"], ".2f"),
         fmt(r["peak"] / r["base"], ".2f"),
         fmt(ratio(k["peak"] / k["base"], r["peak"] / r["base"]), ".2f")),
    ]
    text = table(f"RDB persistence, {keys:,} keys of mixed types (kiln vs redis)",
                 ["measure", "kiln", "redis", "kiln/redis"], rows)
    compare.save_report("persistence", text)


if __name__ == "__main__":
    main()
