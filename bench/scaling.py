#!/usr/bin/env python3
"""Thread scaling: Kiln with 1..16 worker threads against Redis 7 with io-threads 1..8.

Usage:
    python3 bench/scaling.py                   # full run
    python3 bench/scaling.py --quick           # smoke run: 1 rep, 10,000 requests a run
    python3 bench/scaling.py --threads-list 1,2,4 --redis-threads-list 1,2
    python3 bench/scaling.py --procs 4 --bench-threads 2 --clients 200

What it does:
  1. builds Kiln (`cargo build --release -p kiln-server`, skip with --no-build);
  2. for each thread count N of --threads-list (default 1,2,4,8,16) starts a fresh
     `kiln-server --threads N` and, when N is in --redis-threads-list (default 1,2,4,8), a
     fresh `redis-server --io-threads N` (plus `--io-threads-do-reads yes` when N > 1:
     Redis then reads and parses in its I/O threads too, not only writes; commands still
     run on its main thread), both with `--save '' --appendonly no`, and sets key:0..99999
     (3-byte values) in each;
  3. runs each row against both, the order flipping every repetition as in compare.py:
       GET, SET uniform   --procs redis-benchmark processes at once (default: a quarter of
                          the cores, at least 2), each with `--threads --bench-threads`
                          (redis-benchmark's own multi-threaded mode; default: what keeps
                          all client threads within half the cores, at least 1) and an
                          equal share of --clients connections (default 50 a process),
                          `-t get` / `-t set` over key:__rand_int__ with -r 100000;
       GET, SET hot       the skewed distribution of compare.py's GET/SET skewed row, one
                          command a row: three processes at once, with -r 10 (60% of the
                          clients and requests), -r 1000 (30%) and -r 100000 (10%), each
                          with `--threads --bench-threads`. The ranges overlap (key:0..9
                          are in all three), so ~60% of the requests go to 10 keys, ~30% to
                          the next 990 and ~10% to the other 99,000 (redis-benchmark has no
                          Zipf option);
     each without pipelining and with -P 16 (which sends --pipelined-factor times the
     requests). A row's req/s is all its requests over the wall time from the first
     process's start to the last one's exit; server CPU time per request comes from the
     server's utime + stime (/proc/<pid>/stat, all its threads) before and after;
  4. prints, per row and thread count, each server's req/s, its speedup over its own first
     thread count (1 by default), the Kiln/Redis ratio at equal thread counts and the
     server CPU µs per request.

The load generators run on the same machine as the servers: on a machine with few cores
(the script warns when a thread count exceeds them) the servers and the clients share the
CPUs and no scaling past the core count can show. On a 16-core machine, raise --procs /
--bench-threads until the client is not the bottleneck (the client's CPU use shows in
`top`; a server thread count whose req/s stays flat while its CPU per request drops is
client-bound). Needs Python 3, redis-server and redis-benchmark 7.0 (for --threads).
Servers listen on free loopback ports (KILN_BENCH_PORTS=LO-HI restricts them to a range);
every server started is stopped on exit. A copy of the report goes to bench/out/.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402
from compare import (SKEW, Server, fill_keys, fmt, prepare, ratio,  # noqa: E402
                     release_binary, run_concurrent, save_report, split_by_weight, table)

COMMANDS = [("GET", "get"), ("SET", "set")]
KEYSPACE = 100000


def cores():
    """CPUs this process may run on (the affinity mask), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def uniform_jobs(test, requests, clients, procs, bench_threads):
    """`procs` equal redis-benchmark processes over -r KEYSPACE."""
    cl = split_by_weight(clients, [1] * procs)
    req = split_by_weight(requests, cl)
    extra = ["--threads", str(bench_threads)] if bench_threads > 1 else []
    return [(["-t", test] + extra, n, c, KEYSPACE) for n, c in zip(req, cl)]


def hot_jobs(test, requests, clients, bench_threads):
    """One process per SKEW range, clients and requests split by its weight."""
    cl = split_by_weight(clients, [w for _, w in SKEW])
    req = split_by_weight(requests, cl)
    extra = ["--threads", str(bench_threads)] if bench_threads > 1 else []
    return [(["-t", test] + extra, n, c, r) for (r, _), n, c in zip(SKEW, req, cl)]


def rows_spec(args):
    """(label, pipeline, requests, jobs) of every row."""
    out = []
    for pipeline in compare.PIPELINES:
        n = args.requests if pipeline == 1 else args.requests * args.pipelined_factor
        for kind in ("uniform", "hot"):
            for label, test in COMMANDS:
                if kind == "uniform":
                    jobs = uniform_jobs(test, n, args.clients, args.procs, args.bench_threads)
                else:
                    jobs = hot_jobs(test, n, args.clients, args.bench_threads)
                out.append((f"{label} P{pipeline} {kind}", pipeline, n, jobs))
    return out


def parse_list(text):
    return [int(x) for x in text.split(",") if x.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ncores = cores()
    default_procs = max(2, ncores // 4)
    p.add_argument("--threads-list", default="1,2,4,8,16",
                   help="kiln-server --threads values (default 1,2,4,8,16)")
    p.add_argument("--redis-threads-list", default="1,2,4,8",
                   help="redis-server --io-threads values (default 1,2,4,8)")
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--requests", type=int, help="requests per run without pipelining "
                   "(default 100000, --quick 10000)")
    p.add_argument("--pipelined-factor", type=int, default=5,
                   help="runs with -P 16 send this many times --requests (default 5)")
    p.add_argument("--reps", type=int, help="repetitions per row and server (default 2, "
                   "--quick 1)")
    p.add_argument("--procs", type=int, default=default_procs,
                   help=f"redis-benchmark processes of the uniform rows (default "
                   f"max(2, cores/4) = {default_procs})")
    p.add_argument("--bench-threads", type=int,
                   help="redis-benchmark --threads of each process (default: all client "
                   "threads within half the cores, at least 1)")
    p.add_argument("--clients", type=int,
                   help="connections in all, split between the processes (default 50 a "
                   "process of the uniform rows)")
    p.add_argument("--no-build", action="store_true", help="use the existing release binary")
    args = p.parse_args()
    args.requests = args.requests or (10000 if args.quick else 100000)
    args.reps = args.reps or (1 if args.quick else 2)
    args.bench_threads = args.bench_threads or max(1, ncores // (2 * args.procs))
    args.clients = args.clients or 50 * args.procs
    kiln_threads = parse_list(args.threads_list)
    redis_threads = parse_list(args.redis_threads_list)
    counts = sorted(set(kiln_threads) | set(redis_threads))

    prepare(("redis-server", "redis-benchmark", "redis-cli"))
    kiln_bin = release_binary(args.no_build)
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.strip()

    warnings = []
    over = [n for n in counts if n > ncores]
    if over:
        warnings.append(
            f"WARNING: {ncores} CPU(s) here; thread counts {', '.join(map(str, over))} exceed "
            f"them (and the clients share the same CPUs): no scaling can show past "
            f"{ncores} thread(s).")
    client_threads = args.procs * args.bench_threads
    if client_threads + 1 > ncores:
        warnings.append(
            f"WARNING: {client_threads} client thread(s) for the uniform rows, "
            f"{len(SKEW) * args.bench_threads} for the hot rows, plus the server, on "
            f"{ncores} CPU(s): the client is likely the bottleneck at higher thread counts.")
    for w in warnings:
        print(w, flush=True)

    specs = rows_spec(args)
    # results[(server, threads, row label)] = {"rps": [...], "cpu": total µs, "n": requests}
    results = {}
    for n in counts:
        servers = []
        if n in kiln_threads:
            servers.append(Server("kiln", kiln_bin, ["--threads", str(n)]))
        if n in redis_threads:
            extra = ["--io-threads", str(n)]
            if n > 1:
                extra += ["--io-threads-do-reads", "yes"]
            servers.append(Server("redis", "redis-server", extra))
        print(f"{n} thread(s): {', '.join(s.name for s in servers)}", flush=True)
        try:
            for s in servers:
                s.start()
                fill_keys(s)
            for label, pipeline, requests, jobs in specs:
                for rep in range(args.reps):
                    order = servers if rep % 2 == 0 else servers[::-1]
                    for s in order:
                        rps, cpu = run_concurrent(s, jobs, pipeline)
                        acc = results.setdefault((s.name, n, label),
                                                 {"rps": [], "cpu": 0.0, "n": 0})
                        acc["rps"].append(rps)
                        acc["cpu"] += cpu * requests
                        acc["n"] += requests
                line = "  ".join(
                    f"{s.name} {fmt(compare.mean_rps(results[(s.name, n, label)]), '>11,.0f')}"
                    for s in servers)
                print(f"  {label:<16} {line} req/s", flush=True)
        finally:
            for s in servers:
                s.stop()

    def rps(name, n, label):
        acc = results.get((name, n, label))
        return compare.mean_rps(acc) if acc else None

    def cpu(name, n, label):
        acc = results.get((name, n, label))
        return compare.cpu_per_req(acc) if acc else None

    lines = []
    kbase, rbase = kiln_threads[0], redis_threads[0]
    for label, _, _, _ in specs:
        for n in counts:
            kr, rr = rps("kiln", n, label), rps("redis", n, label)
            lines.append((
                label if n == counts[0] else "", str(n),
                fmt(kr, ",.0f"), fmt(ratio(kr, rps("kiln", kbase, label)), ".2f"),
                fmt(rr, ",.0f"), fmt(ratio(rr, rps("redis", rbase, label)), ".2f"),
                fmt(ratio(kr, rr), ".2f"),
                fmt(cpu("kiln", n, label), ".2f"), fmt(cpu("redis", n, label), ".2f"),
            ))
    uniform = (f"{args.procs} redis-benchmark process(es) x --threads {args.bench_threads}, "
               f"{args.clients} clients in all")
    report = [
        f"kiln-server {kiln_bin} (--threads N) vs {redis_version} (--io-threads N, "
        f"--io-threads-do-reads yes when N > 1)",
        f"{ncores} CPU(s) (os.cpu_count() {os.cpu_count()}); uniform rows: {uniform}, "
        f"-r {KEYSPACE}; hot rows: {len(SKEW)} processes x --threads {args.bench_threads} "
        f"over -r {'/'.join(str(r) for r, _ in SKEW)} "
        f"({'/'.join(f'{w:.0%}' for _, w in SKEW)} of the load), {args.clients} clients",
        f"-n {args.requests} without pipelining, {args.requests * args.pipelined_factor} with "
        f"-P 16; {args.reps} run(s) per server per row, alternating",
    ] + warnings + [
        "",
        table(
            f"Throughput by thread count (speedup: over {kbase} Kiln thread(s) / {rbase} Redis "
            f"io-thread(s); kiln/redis: at equal thread counts)",
            ["row", "threads", "kiln req/s", "speedup", "redis req/s", "speedup",
             "kiln/redis", "kiln CPU us/req", "redis CPU us/req"],
            lines,
        ),
    ]
    save_report("scaling", "\n".join(report))


if __name__ == "__main__":
    main()
