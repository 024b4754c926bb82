#!/usr/bin/env python3
"""Kiln vs Redis in cluster mode, side by side: cluster throughput and slot migration time.

Usage:
    python3 bench/cluster.py              # full run: a few minutes on 2 cores
    python3 bench/cluster.py --quick      # smoke run: well under a minute
    python3 bench/cluster.py --no-build   # use the existing target/release/kiln-server

What it does:
  1. builds Kiln (`cargo build --release -p kiln-server`, skip with --no-build);
  2. starts two 3-primary clusters, no replicas: three kiln-server nodes and three
     redis-server nodes, each `--cluster-enabled yes --cluster-node-timeout 5000` with its
     bus on a free port (`--cluster-port`), `--save '' --appendonly no`. Each cluster is
     joined directly: CLUSTER ADDSLOTSRANGE (a third of the slots per node), CLUSTER MEET
     (bus port given), then polled until every node says cluster_state:ok and all give the
     same CLUSTER SLOTS;
  3. throughput: `redis-benchmark --cluster -t set,get -c 50 -r 100000`, once without
     pipelining and once with -P 16 (-n --requests, and --pipelined-factor times that with
     -P 16), runs alternating between the clusters (the order flips every repetition).
     Server CPU time per request is the utime + stime of the three nodes together
     (/proc/<pid>/stat, before and after each run);
  4. slot migration: --slot-keys keys (default 100,000; 10-byte values) all in one slot of
     the first node (one hash tag), loaded through pipelined SETs, then the slot is moved to
     the second node the way `redis-cli --cluster reshard` does it: CLUSTER SETSLOT
     IMPORTING on the target, MIGRATING on the source, then CLUSTER GETKEYSINSLOT / MIGRATE
     ... KEYS batches of 100 until the slot is empty, then CLUSTER SETSLOT NODE on all three
     nodes. The time from the first SETSLOT to the last is reported (and keys per second),
     after checking that the target holds every key (CLUSTER COUNTKEYSINSLOT). Repetitions
     move the slot back and forth.

Until Kiln's cluster bus works the Kiln cluster does not form: the report says what failed
and reads n/a in Kiln's columns; the Redis columns are still measured. Needs Python 3
(standard library only), cargo, and redis-server, redis-cli and redis-benchmark on the PATH.
Every node it starts is stopped on exit, on Ctrl-C and on SIGTERM. A copy of the report is
written to bench/out/ (ignored by git).
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the side-by-side harness: servers, RESP client, tables)
from compare import Conn, RespError, Server, fmt, ratio, table  # noqa: E402

NODES = 3
SLOTS = 16384
MIGRATE_BATCH = 100


class ClusterDown(Exception):
    """A cluster that did not form or an operation that failed: reported, not fatal."""


class Cluster:
    def __init__(self, name, binary, extra, timeout):
        self.name = name
        self.nodes = []
        for i in range(NODES):
            bus = compare.free_port()
            argv = extra + [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000",
                "--cluster-port", str(bus),
            ]
            s = Server(f"{name}-{i}", binary, argv)
            s.bus = bus
            self.nodes.append(s)
        for s in self.nodes:
            s.start()
        try:
            self.ids = [s.call("CLUSTER", "MYID") for s in self.nodes]
            self.join(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        for s in self.nodes:
            s.stop()

    def join(self, timeout):
        for i, s in enumerate(self.nodes):
            lo, hi = SLOTS * i // NODES, SLOTS * (i + 1) // NODES - 1
            s.call("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        first = self.nodes[0]
        for s in self.nodes[1:]:
            s.call("CLUSTER", "MEET", "127.0.0.1", first.port, first.bus)
        deadline = time.monotonic() + timeout
        while True:
            why = self.unhealthy()
            if why is None:
                return
            if time.monotonic() > deadline:
                raise ClusterDown(f"{self.name} cluster not ok after {timeout}s: {why}")
            time.sleep(0.05)

    def unhealthy(self):
        """Why the nodes are not one healthy cluster yet, or None."""
        maps = []
        for s in self.nodes:
            info = s.call("CLUSTER", "INFO")
            fields = dict(l.split(":", 1) for l in info.splitlines() if ":" in l)
            if fields.get("cluster_state", "").strip() != "ok":
                return f"{s.name}: cluster_state {fields.get('cluster_state')!r}"
            known = int(fields.get("cluster_known_nodes", 0))
            if known != NODES:
                return f"{s.name} knows {known} nodes"
            maps.append(sorted(str(r) for r in s.call("CLUSTER", "SLOTS")))
        if any(m != maps[0] for m in maps):
            return "the nodes give different CLUSTER SLOTS"
        return None

    def cpu(self):
        return sum(compare.cpu_ticks(s.pid) for s in self.nodes)

    def slot_of(self, key):
        return self.nodes[0].call("CLUSTER", "KEYSLOT", key)

    def owner(self, slot):
        return min(slot * NODES // SLOTS, NODES - 1)


def give_up(clusters, name):
    """Stops a cluster after a failed step; its later rows read n/a."""
    clusters[name].stop()
    clusters[name] = None


def run_benchmark(cluster, requests, pipeline, clients, keyspace):
    """One `redis-benchmark --cluster -t set,get` run: {test: (req/s, CPU µs per req)}.
    The CPU time of the run is split between the tests by their share of the wall time."""
    argv = [
        "redis-benchmark", "--cluster",
        "-h", "127.0.0.1", "-p", str(cluster.nodes[0].port),
        "-n", str(requests), "-c", str(clients), "-P", str(pipeline),
        "-r", str(keyspace), "-t", "set,get", "-q", "--csv",
    ]
    before = cluster.cpu()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    after = cluster.cpu()
    if done.returncode != 0:
        raise ClusterDown(f"redis-benchmark failed on {cluster.name}: "
                          f"{(done.stderr or done.stdout).strip()[-500:]}")
    rps = {}
    for line in done.stdout.splitlines():
        cols = [c.strip('"') for c in line.split(",")]
        if len(cols) > 1 and cols[0] in ("SET", "GET"):
            rps[cols[0]] = float(cols[1])
    if len(rps) != 2:
        raise ClusterDown(f"no result from redis-benchmark on {cluster.name}: "
                          f"{done.stdout[-500:]!r} {done.stderr[-500:]!r}")
    # Both tests send `requests` requests; their CPU share follows their time share.
    secs = {t: requests / r for t, r in rps.items()}
    total_cpu_us = (after - before) / compare.CLK_TCK * 1e6
    wall = sum(secs.values())
    return {t: (rps[t], total_cpu_us * secs[t] / wall / requests) for t in rps}


def throughput(clusters, args):
    """Rows (label, kiln req/s, redis req/s, kiln CPU, redis CPU) for SET and GET."""
    acc = {}
    for rep in range(args.reps):
        order = list(clusters.items())
        if rep % 2:
            order.reverse()
        for pipeline in (1, 16):
            n = args.requests * (args.pipelined_factor if pipeline > 1 else 1)
            for name, c in order:
                if c is None:
                    continue
                try:
                    res = run_benchmark(c, n, pipeline, args.clients, args.keyspace)
                except ClusterDown as e:
                    print(f"  {name}: {e}", flush=True)
                    give_up(clusters, name)
                    continue
                for test, (rps, cpu) in res.items():
                    acc.setdefault((test, pipeline, name), []).append((rps, cpu))
    rows = []
    for pipeline in (1, 16):
        for test in ("SET", "GET"):
            vals = {}
            for name in ("kiln", "redis"):
                got = acc.get((test, pipeline, name))
                vals[name] = (sum(r for r, _ in got) / len(got),
                              sum(c for _, c in got) / len(got)) if got else (None, None)
            label = test if pipeline == 1 else f"{test} -P {pipeline}"
            rows.append((label, vals["kiln"][0], vals["redis"][0],
                         vals["kiln"][1], vals["redis"][1]))
    return rows


def hash_tag_in(cluster, node):
    """A hash tag whose slot belongs to `node`."""
    for i in range(100000):
        tag = f"mig{i}"
        slot = cluster.slot_of(tag)
        if cluster.owner(slot) == node:
            return tag, slot
    raise ClusterDown("no hash tag found")


def load_slot(cluster, tag, keys):
    src = cluster.nodes[0]
    c = Conn(src.port)
    try:
        for start in range(0, keys, 1000):
            c.pipeline([("SET", f"{{{tag}}}:{i}", "v" * 10)
                        for i in range(start, min(keys, start + 1000))])
    finally:
        c.close()


def migrate_slot(cluster, slot, src, dst, keys):
    """Moves `slot` from node `src` to node `dst`; seconds taken."""
    s, d = cluster.nodes[src], cluster.nodes[dst]
    sc = Conn(s.port)
    try:
        start = time.monotonic()
        d.call("CLUSTER", "SETSLOT", slot, "IMPORTING", cluster.ids[src])
        s.call("CLUSTER", "SETSLOT", slot, "MIGRATING", cluster.ids[dst])
        while True:
            batch = sc.cmd("CLUSTER", "GETKEYSINSLOT", slot, MIGRATE_BATCH)
            if not batch:
                break
            sc.cmd("MIGRATE", "127.0.0.1", d.port, "", 0, 60000, "KEYS", *batch)
        for n in (d, s) + tuple(x for x in cluster.nodes if x not in (s, d)):
            n.call("CLUSTER", "SETSLOT", slot, "NODE", cluster.ids[dst])
        took = time.monotonic() - start
    finally:
        sc.close()
    moved = d.call("CLUSTER", "COUNTKEYSINSLOT", slot)
    if moved != keys:
        raise ClusterDown(f"{cluster.name}: {moved} keys in slot {slot} on the target, "
                          f"expected {keys}")
    return took


def migration(clusters, args):
    """Row (label, kiln s, redis s) of the mean time to move one slot of --slot-keys keys."""
    times = {}
    where = {}
    for name, c in clusters.items():
        if c is None:
            continue
        try:
            tag, slot = hash_tag_in(c, 0)
            load_slot(c, tag, args.slot_keys)
            where[name] = (slot, 0)
        except (ClusterDown, RespError, OSError) as e:
            print(f"  {name}: loading the slot failed: {e}", flush=True)
            give_up(clusters, name)
    for rep in range(args.reps):
        order = [(n, c) for n, c in clusters.items() if c is not None]
        if rep % 2:
            order.reverse()
        for name, c in order:
            slot, at = where[name]
            to = 1 if at == 0 else 0
            try:
                took = migrate_slot(c, slot, at, to, args.slot_keys)
            except (ClusterDown, RespError, OSError) as e:
                print(f"  {name}: migrating slot {slot} failed: {e}", flush=True)
                give_up(clusters, name)
                continue
            where[name] = (slot, to)
            times.setdefault(name, []).append(took)
    mean = {n: sum(v) / len(v) for n, v in times.items()}
    return mean.get("kiln"), mean.get("redis")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--requests", type=int, help="requests per run without pipelining "
                   "(default 100000, --quick 10000)")
    p.add_argument("--pipelined-factor", type=int, default=5,
                   help="runs with -P 16 send this many times --requests (default 5)")
    p.add_argument("--reps", type=int, help="repetitions per cluster (default 2, --quick 1)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--keyspace", type=int, default=100000, help="redis-benchmark -r")
    p.add_argument("--slot-keys", type=int, help="keys in the migrated slot (default "
                   "100000, --quick 20000)")
    p.add_argument("--threads", type=int, default=0,
                   help="kiln-server --threads (default 0: one per core)")
    p.add_argument("--join-timeout", type=float, default=30,
                   help="seconds for a cluster to form (default 30)")
    p.add_argument("--no-build", action="store_true", help="use the existing release binary")
    args = p.parse_args()
    args.requests = args.requests or (10000 if args.quick else 100000)
    args.reps = args.reps or (1 if args.quick else 2)
    args.slot_keys = args.slot_keys or (20000 if args.quick else 100000)

    compare.prepare()

    kiln_bin = compare.release_binary(args.no_build)
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.strip()
    report = [
        f"kiln-server {kiln_bin} (--threads {args.threads or 'all cores'}) vs {redis_version}",
        f"{os.cpu_count()} CPUs; {NODES}-primary clusters, no replicas; redis-benchmark "
        f"--cluster -c {args.clients} -r {args.keyspace}; -n {args.requests} without "
        f"pipelining, {args.requests * args.pipelined_factor} with -P 16; {args.reps} run(s) "
        f"per cluster, alternating",
        "",
    ]
    failures = []
    clusters = {}
    for name, binary, extra in (("kiln", kiln_bin, ["--threads", str(args.threads)]),
                                ("redis", "redis-server", [])):
        print(f"starting the {name} cluster...", flush=True)
        try:
            clusters[name] = Cluster(name, binary, extra, args.join_timeout)
        except (ClusterDown, RespError, OSError, SystemExit) as e:
            failures.append(f"{name}: the cluster did not form: {e}")
            print(f"  {failures[-1]}", flush=True)
            clusters[name] = None
    try:
        print("cluster throughput...", flush=True)
        rows = throughput(clusters, args)
        report.append(table(
            "Cluster throughput (redis-benchmark --cluster) and server CPU time per request "
            "(all nodes)",
            ["test", "kiln req/s", "redis req/s", "kiln/redis",
             "kiln CPU us/req", "redis CPU us/req", "kiln/redis"],
            [(label, fmt(kr, ",.0f"), fmt(rr, ",.0f"), fmt(ratio(kr, rr), ".2f"),
              fmt(kc, ".2f"), fmt(rc, ".2f"), fmt(ratio(kc, rc), ".2f"))
             for label, kr, rr, kc, rc in rows]))
        report.append("")
        print("slot migration...", flush=True)
        k, r = migration(clusters, args)
        n = args.slot_keys
        report.append(table(
            f"Moving one slot of {n:,} keys (SETSLOT IMPORTING/MIGRATING, MIGRATE KEYS "
            f"batches of {MIGRATE_BATCH}, SETSLOT NODE)",
            ["measure", "kiln", "redis", "kiln/redis"],
            [("seconds", fmt(k, ".2f"), fmt(r, ".2f"), fmt(ratio(k, r), ".2f")),
             ("keys/s", fmt(n / k if k else None, ",.0f"), fmt(n / r if r else None, ",.0f"),
              fmt(ratio(n / k if k else None, n / r if r else None), ".2f"))]))
        report.append("")
    finally:
        for c in clusters.values():
            if c is not None:
                c.stop()
    for name, c in clusters.items():
        if c is None and not any(f.startswith(name) for f in failures):
            failures.append(f"{name}: a step failed (see above); its later rows read n/a")
    if failures:
        report.append("Failed:")
        report += [f"  {f}" for f in failures]
    compare.save_report("cluster", "\n".join(report))
    # Redis must work: its failure is the script's failure.
    if clusters.get("redis") is None:
        sys.exit(1)


if __name__ == "__main__":
    main()
