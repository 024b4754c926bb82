#!/usr/bin/env python3
"""Kiln vs Redis: time to MIGRATE 100,000 keys, Kiln→Kiln against Redis→Redis.

Usage:
    python3 bench/migrate.py            # 100,000 keys, 3 repetitions
    python3 bench/migrate.py --quick    # 20,000 keys, 1 repetition
    python3 bench/migrate.py --no-build # use the existing target/release/kiln-server

For each pair (fresh processes, compare.py's Server: free loopback ports, `--save ''
--appendonly no`): the source is loaded through one pipelined MSET stream (`key:<i>`,
16-byte values, every tenth key with a TTL), then one client sends `MIGRATE 127.0.0.1
<target> "" 0 5000 KEYS <100 keys>` for every batch of 100, one after another (each
waits for its reply: what `redis-cli --cluster` resharding does). The time is the wall
time of all the MIGRATEs; the source must then be empty and the target hold every key.
Runs alternate between the pairs. Ratio is Kiln / Redis; below 1 means Kiln is faster.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as c  # noqa: E402  (the shared Server, Conn and table code)

BATCH = 100


def load(server, keys):
    conn = c.Conn(server.port)
    cmds = []
    for i in range(keys):
        cmds.append(("SET", f"key:{i}", f"value-{i:010d}"))
        if i % 10 == 0:
            cmds.append(("PEXPIRE", f"key:{i}", "3600000"))
        if len(cmds) >= 10000:
            conn.pipeline(cmds)
            cmds = []
    if cmds:
        conn.pipeline(cmds)
    assert conn.cmd("DBSIZE") == keys
    conn.close()


def migrate_all(src, dst, keys):
    conn = c.Conn(src.port)
    t = time.perf_counter()
    for first in range(0, keys, BATCH):
        batch = [f"key:{i}" for i in range(first, min(keys, first + BATCH))]
        reply = conn.cmd("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *batch)
        assert reply == "OK", reply
    took = time.perf_counter() - t
    assert conn.cmd("DBSIZE") == 0
    conn.close()
    target = c.Conn(dst.port)
    assert target.cmd("DBSIZE") == keys
    target.close()
    return took


def run_pair(binary, extra, name, keys):
    src = c.Server(f"{name}-src", binary, extra).start()
    dst = c.Server(f"{name}-dst", binary, extra).start()
    try:
        load(src, keys)
        return migrate_all(src, dst, keys)
    finally:
        src.stop()
        dst.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--keys", type=int)
    p.add_argument("--reps", type=int)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    keys = args.keys or (20000 if args.quick else 100000)
    reps = args.reps or (1 if args.quick else 3)
    kiln_bin = c.release_binary(args.no_build)
    kiln_extra = ["--threads", str(args.threads)] if args.threads else []
    times = {"kiln": [], "redis": []}
    for rep in range(reps):
        order = ["kiln", "redis"] if rep % 2 == 0 else ["redis", "kiln"]
        for name in order:
            if name == "kiln":
                times[name].append(run_pair(kiln_bin, kiln_extra, name, keys))
            else:
                times[name].append(run_pair("redis-server", [], name, keys))
    k, r = min(times["kiln"]), min(times["redis"])
    rows = [[
        f"MIGRATE {keys} keys, KEYS batches of {BATCH}",
        c.fmt(k, ".3f"),
        c.fmt(r, ".3f"),
        c.fmt(c.ratio(k, r), ".2f"),
    ]]
    c.save_report("migrate", c.table(
        f"MIGRATE: wall time (s, best of {reps}), Kiln→Kiln vs Redis→Redis",
        ["test", "kiln s", "redis s", "ratio"], rows))


if __name__ == "__main__":
    main()
