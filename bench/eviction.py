#!/usr/bin/env python3
"""Kiln vs Redis under maxmemory, side by side: cache hit ratio, SET while evicting, keys held.

Usage:
    python3 bench/eviction.py            # full run: a few minutes on 2 cores
    python3 bench/eviction.py --quick    # smoke run: under a minute
    python3 bench/eviction.py --no-build # use the existing target/release/kiln-server
    python3 bench/eviction.py --binary redis-server   # any server binary on the "kiln" side
    python3 bench/eviction.py --skip-hit --skip-set   # only the keys-held row

Both servers run in the same run, on free loopback ports, with the same `maxmemory` and
policy (`--save '' --appendonly no`, Kiln with --threads as given). Every row starts fresh
servers and alternates between them (the order flips from row to row and run to run), so
machine noise hits both alike. Ratios are Kiln / Redis.

What it does:
  1. builds Kiln (`cargo build --release -p kiln-server`; skip with --no-build, or point the
     "kiln" side at another server binary with --binary: `--threads` is passed only to a
     binary whose name does not start with "redis");
  2. cache hit ratio, under allkeys-lru then allkeys-lfu: maxmemory --hit-maxmemory
     (default 32mb, --quick 8mb); keys `c:<n>` drawn from a Zipf distribution (exponent
     --zipf, default 1.0) over --hit-keys keys (default 400,000, --quick 120,000: several
     times what fits), values of 100 to 500 bytes (fixed per key). One connection sends
     100 GETs at a time, then a SET for every miss of the batch (a cache: GET, on a miss
     SET). The key sequence is the same for both servers (fixed --seed). A warm-up phase
     (--warmup GETs, default as many as there are keys) fills the cache, then the hit
     ratio is counted over --gets GETs (default 1,000,000, --quick 200,000); server CPU
     time per GET (with its share of SETs) comes from /proc/<pid>/stat;
  3. SET while evicting, allkeys-lru, maxmemory --set-maxmemory (default 16mb, --quick
     8mb): redis-benchmark `-t set -r 10000000 -d 100`, 50 clients, without pipelining
     (--requests, default 100,000, --quick 20,000) and with -P 16 (5 times as many).
     Before the timed runs each server is pre-filled with the same load (-P 16) until
     INFO's evicted_keys moves, so every timed SET of a new key evicts one; the pre-fill
     stops anyway after maxmemory / 67 SETs (one and a half times as many 100-byte values
     as maxmemory could hold), so a server that never evicts is measured as it is. Throughput and server CPU
     time per request (utime + stime in /proc/<pid>/stat, before and after each run);
  4. keys held: maxmemory --keys-maxmemory (default 32mb, --quick 8mb), allkeys-lru; SETs
     of 16-byte keys and 3-byte values (as compare.py's memory row) piped through
     `redis-cli --pipe` in chunks until evictions started and twice the keys held were
     sent, or maxmemory / 16 keys were sent (the keys alone would not fit); then DBSIZE.
  5. after every row: INFO's used_memory, maxmemory and evicted_keys (a delta over the
     row) for each server, in one table. `OVER LIMIT` flags used_memory above maxmemory
     by more than --tolerance percent (default 5), `never evicted` a server whose
     evicted_keys did not move (or that has no such field): its numbers in that row are
     those of an unbounded server, not of a cache.

Needs Python 3 (standard library only), cargo, and redis-server, redis-cli and
redis-benchmark on the PATH. Every server it starts is stopped on exit, on Ctrl-C and on
SIGTERM; only those. A copy of the report is written to bench/out/ (ignored by git).
"""

import argparse
import atexit
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the side-by-side harness: servers, RESP client, tables)
from compare import (  # noqa: E402
    CLK_TCK, RespError, Server, cpu_ticks, fmt, info_fields, ratio, table,
)

BATCH = 100
VALUE = b"v" * 500
# redis-benchmark's SET load of row 2.
SET_VALUE_SIZE = 100
SET_KEYSPACE = 10_000_000
POLICIES = ("allkeys-lru", "allkeys-lfu")


def parse_size(s):
    """Redis's memory units: 32mb, 1gb, 100k, 1048576."""
    s = s.strip().lower()
    units = {"kb": 1024, "k": 1000, "mb": 1024**2, "m": 1000**2, "gb": 1024**3, "g": 1000**3,
             "b": 1}
    for suffix in ("kb", "mb", "gb", "k", "m", "g", "b"):
        if s.endswith(suffix):
            return int(float(s[: -len(suffix)]) * units[suffix])
    return int(s)


def human(n):
    return f"{n / 1024**2:.1f}MB" if n >= 1024**2 else f"{n / 1024:.0f}KB"


# --- servers --------------------------------------------------------------------------


class Side:
    """One side of the comparison: a name, a binary and its extra arguments."""

    def __init__(self, name, binary, extra):
        self.name, self.binary, self.extra = name, binary, list(extra)

    def start(self, maxmemory, policy):
        return Server(self.name, self.binary, self.extra + [
            "--maxmemory", str(maxmemory), "--maxmemory-policy", policy,
        ]).start()


def mem_state(server):
    """used_memory, maxmemory (INFO memory) and evicted_keys (INFO stats; None if absent)."""
    mem = info_fields(server, "memory")
    stats = info_fields(server, "stats")
    ev = stats.get("evicted_keys")
    return {
        "used": int(mem["used_memory"]) if "used_memory" in mem else None,
        "max": int(mem["maxmemory"]) if "maxmemory" in mem else None,
        "evicted": int(ev) if ev is not None else None,
    }


class Limits:
    """Rows of the memory limit table, and which (row, server) never evicted."""

    def __init__(self, tolerance):
        self.tolerance = tolerance
        self.rows = []
        self.never = set()

    def record(self, label, server, before, maxmemory, dbsize=None):
        after = mem_state(server)
        evicted = None
        if after["evicted"] is not None:
            evicted = after["evicted"] - (before["evicted"] or 0)
        notes = []
        if after["max"] is not None and after["max"] != maxmemory:
            notes.append(f"INFO maxmemory {after['max']}")
        used = after["used"]
        if used is not None and used > maxmemory * (1 + self.tolerance / 100):
            notes.append(f"OVER LIMIT +{(used / maxmemory - 1) * 100:.0f}%")
        if not evicted:
            notes.append("never evicted" if evicted is not None else "no evicted_keys")
            self.never.add((label, server.name))
        self.rows.append((label, server.name, human(maxmemory),
                          fmt(used, ",d"), fmt(ratio(used, maxmemory), ".3f"),
                          fmt(evicted, ",d"), fmt(dbsize, ",d"),
                          ", ".join(notes) or "ok"))
        return evicted

    def mark(self, label, name):
        return " *" if (label, name) in self.never else ""

    def table(self):
        return table(
            f"Memory limit after each row (used_memory from INFO memory; evicted_keys from "
            f"INFO stats, delta over the row; OVER LIMIT: more than {self.tolerance:g}% above "
            f"maxmemory)",
            ["row", "server", "maxmemory", "used_memory", "used/max", "evicted_keys",
             "DBSIZE", "note"],
            self.rows,
        )


# --- 1. cache hit ratio -----------------------------------------------------------------


def zipf_sequence(keys, exponent, count, seed):
    """`count` key numbers in 0..keys-1, Zipf-distributed (rank r has weight 1/(r+1)^s);
    ranks are shuffled onto key numbers so the hot keys are spread over the key space."""
    rnd = random.Random(seed)
    cum = list(itertools.accumulate(1.0 / (r + 1) ** exponent for r in range(keys)))
    ranks = rnd.choices(range(keys), cum_weights=cum, k=count)
    perm = list(range(keys))
    rnd.shuffle(perm)
    return [perm[r] for r in ranks]


def value_size(k):
    return 100 + (k * 2654435761) % 401


class CacheClient:
    """One connection running the cache loop: GET a batch, SET every miss."""

    def __init__(self, port, keys):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.names = [b"c:%d" % k for k in range(keys)]
        self.gets = [b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(n), n) for n in self.names]
        self.set_errors = 0
        self.first_error = None

    def close(self):
        self.sock.close()

    def _more(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _read_gets(self, n):
        """Reads `n` GET replies; returns the indexes of the misses."""
        buf = self.buf
        misses = []
        pos = 0
        i = 0
        while i < n:
            j = buf.find(b"\r\n", pos)
            if j < 0:
                del buf[:pos]
                pos = 0
                self._more()
                continue
            c = buf[pos]
            if c == 36:  # '$'
                ln = int(buf[pos + 1:j])
                if ln < 0:
                    misses.append(i)
                    pos = j + 2
                else:
                    end = j + 4 + ln
                    if len(buf) < end:
                        del buf[:pos]
                        pos = 0
                        self._more()
                        continue
                    pos = end
            elif c == 95:  # '_' (RESP3 null)
                misses.append(i)
                pos = j + 2
            else:
                raise RespError(f"GET answered {bytes(buf[pos:j])!r}")
            i += 1
        del buf[:pos]
        return misses

    def _read_lines(self, n):
        """Reads `n` one-line replies (+OK or an error); counts the errors."""
        buf = self.buf
        while buf.count(b"\r\n") < n:
            self._more()
        pos = 0
        for _ in range(n):
            j = buf.find(b"\r\n", pos)
            if buf[pos] == 45:  # '-'
                self.set_errors += 1
                if self.first_error is None:
                    self.first_error = bytes(buf[pos:j]).decode(errors="replace")
            pos = j + 2
        del buf[:pos]

    def run(self, seq):
        """Runs the cache loop over `seq`; returns (GETs, hits, SETs)."""
        hits = sets = 0
        gets, names = self.gets, self.names
        for lo in range(0, len(seq), BATCH):
            batch = seq[lo:lo + BATCH]
            self.sock.sendall(b"".join([gets[k] for k in batch]))
            misses = self._read_gets(len(batch))
            hits += len(batch) - len(misses)
            if misses:
                out = []
                for i in misses:
                    k = batch[i]
                    size = value_size(k)
                    name = names[k]
                    out.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                               % (len(name), name, size, VALUE[:size]))
                self.sock.sendall(b"".join(out))
                self._read_lines(len(misses))
                sets += len(misses)
        return len(seq), hits, sets


def hit_ratio(sides, args, limits):
    """Rows of (policy, {name: (hit ratio, CPU µs per GET, client GETs/s, SET errors)})."""
    print(f"  drawing {args.warmup + args.gets:,} Zipf keys...", flush=True)
    seq = zipf_sequence(args.hit_keys, args.zipf, args.warmup + args.gets, args.seed)
    warm, measured = seq[:args.warmup], seq[args.warmup:]
    args.distinct = len(set(seq))
    rows = []
    for n, policy in enumerate(POLICIES):
        label = f"hit {policy}"
        results = {}
        for side in (sides if n % 2 == 0 else sides[::-1]):
            server = side.start(args.hit_maxmemory, policy)
            try:
                before = mem_state(server)
                client = CacheClient(server.port, args.hit_keys)
                try:
                    client.run(warm)
                    c0, t0 = cpu_ticks(server.pid), time.monotonic()
                    gets, hits, _sets = client.run(measured)
                    elapsed = time.monotonic() - t0
                    cpu = (cpu_ticks(server.pid) - c0) / CLK_TCK * 1e6 / gets
                finally:
                    client.close()
                if client.first_error:
                    print(f"  {label}: {side.name}: {client.set_errors} SET errors, first: "
                          f"{client.first_error}", flush=True)
                limits.record(label, server, before, args.hit_maxmemory,
                              server.call("DBSIZE"))
                results[side.name] = (hits / gets, cpu, gets / elapsed, client.set_errors)
                print(f"  {label:<16} {side.name:<6} hit ratio {hits / gets:.4f}  "
                      f"({gets / elapsed:,.0f} GETs/s through the client)", flush=True)
            finally:
                server.stop()
        rows.append((label, results))
    return rows


def hit_table(rows, sides, args, limits):
    k, r = sides[0].name, sides[1].name
    out = []
    for label, res in rows:
        kh, kc, _, ke = res[k]
        rh, rc, _, re_ = res[r]
        out.append((label.removeprefix("hit ") + limits.mark(label, k) + limits.mark(label, r),
                    f"{kh:.4f}", f"{rh:.4f}", fmt(ratio(kh, rh), ".3f"),
                    f"{kc:.2f}", f"{rc:.2f}", fmt(ratio(kc, rc), ".2f"),
                    f"{ke:,d}/{re_:,d}"))
    return table(
        f"Cache hit ratio: Zipf s={args.zipf:g} over {args.hit_keys:,} keys "
        f"({args.distinct:,} drawn), values 100-500 B, maxmemory {human(args.hit_maxmemory)}; {args.warmup:,} GETs warm-up, "
        f"{args.gets:,} measured (GET x{BATCH}, then SET each miss)",
        ["policy", "kiln hit", "redis hit", "kiln/redis", "kiln CPU us/GET",
         "redis CPU us/GET", "kiln/redis", "SET errors k/r"],
        out,
    )


# --- 2. SET while evicting ----------------------------------------------------------------


class SetBench:
    """redis-benchmark's SET of 100-byte values (what compare.run_benchmark runs)."""
    label = "SET evicting"

    def argv(self):
        return ["-t", "set", "-d", str(SET_VALUE_SIZE)]


def prefill_set(server, args):
    """Runs the SET load (-P 16) in chunks until evicted_keys moves or the cap is reached;
    returns the SETs sent."""
    cap = args.set_maxmemory // 67
    chunk = max(1000, cap // 10)
    start = mem_state(server)["evicted"] or 0
    sent = 0
    while sent < cap:
        compare.run_benchmark(server, SetBench(), chunk, 16, args.clients, SET_KEYSPACE)
        sent += chunk
        ev = mem_state(server)["evicted"]
        if ev is not None and ev > start:
            break
    return sent


def set_evicting(sides, args, limits):
    """Rows like compare.throughput()'s: (label, kiln rps, redis rps, kiln µs, redis µs)."""
    servers = []
    befores = {}
    try:
        for side in sides:
            server = side.start(args.set_maxmemory, "allkeys-lru")
            servers.append(server)
            befores[side.name] = mem_state(server)
        for server in servers:
            sent = prefill_set(server, args)
            print(f"  pre-fill {server.name}: {sent:,} SETs, DBSIZE {server.call('DBSIZE'):,}, "
                  f"evicted_keys {mem_state(server)['evicted']}", flush=True)
        rows = []
        for pipeline in compare.PIPELINES:
            requests = args.requests if pipeline == 1 else args.requests * 5
            acc = {s.name: {"rps": [], "cpu": 0.0, "n": 0} for s in servers}
            for rep in range(args.reps):
                order = servers if (rep + pipeline) % 2 == 0 else servers[::-1]
                for server in order:
                    rps, cpu = compare.run_benchmark(server, SetBench(), requests, pipeline,
                                                     args.clients, SET_KEYSPACE)
                    a = acc[server.name]
                    a["rps"].append(rps)
                    a["cpu"] += cpu * requests
                    a["n"] += requests
            k, r = acc[servers[0].name], acc[servers[1].name]
            row = (f"SET -d 100 P{pipeline}", compare.mean_rps(k), compare.mean_rps(r),
                   compare.cpu_per_req(k), compare.cpu_per_req(r))
            rows.append(row)
            print(f"  {row[0]:<16} kiln {fmt(row[1], '>11,.0f')} req/s   "
                  f"redis {fmt(row[2], '>11,.0f')} req/s", flush=True)
        for server in servers:
            limits.record("SET evicting", server, befores[server.name], args.set_maxmemory,
                          server.call("DBSIZE"))
        return rows
    finally:
        for server in servers:
            server.stop()


# --- 3. keys held --------------------------------------------------------------------------


def write_set_chunk(path, lo, hi):
    """SET k:<14 digits> <3 bytes> for keys lo..hi-1 (compare.write_set_pipe's keys)."""
    with open(path, "wb") as f:
        f.write(b"".join(b"*3\r\n$3\r\nSET\r\n$16\r\nk:%014d\r\n$3\r\n%03d\r\n" % (i, i % 1000)
                         for i in range(lo, hi)))


def keys_held(sides, args, limits, tmp):
    """{name: (DBSIZE, keys sent, used_memory)} after filling each server past its limit."""
    cap = args.keys_maxmemory // 16
    chunk = max(1000, cap // 16)
    files = []
    results = {}
    for side in sides:
        server = side.start(args.keys_maxmemory, "allkeys-lru")
        try:
            before = mem_state(server)
            sent = 0
            errors = None
            while sent < cap:
                i = sent // chunk
                if i == len(files):
                    files.append(os.path.join(tmp, f"keys-{i}.resp"))
                    write_set_chunk(files[i], i * chunk, (i + 1) * chunk)
                try:
                    compare.load_pipe(server, chunk, files[i])
                except RespError as e:
                    errors = str(e)
                sent += chunk
                ev = mem_state(server)["evicted"]
                if errors or (ev and ev > (before["evicted"] or 0)
                              and sent >= 2 * server.call("DBSIZE")):
                    break
            dbsize = server.call("DBSIZE")
            if errors:
                print(f"  keys held: {side.name}: redis-cli --pipe: {errors}", flush=True)
            evicted = limits.record("keys held", server, before, args.keys_maxmemory, dbsize)
            results[side.name] = (dbsize, sent, mem_state(server)["used"])
            print(f"  keys held {side.name:<6} DBSIZE {dbsize:,} after {sent:,} SETs "
                  f"(evicted {fmt(evicted, ',d')})", flush=True)
        finally:
            server.stop()
    return results


def keys_table(res, sides, args, limits):
    k, r = sides[0].name, sides[1].name
    (kd, ks, ku), (rd, rs, ru) = res[k], res[r]
    m = args.keys_maxmemory
    mk, mr = limits.mark("keys held", k), limits.mark("keys held", r)
    return table(
        f"Keys held under maxmemory {human(m)} (allkeys-lru; SET of 16-byte keys, 3-byte "
        f"values until twice the keys held were sent)",
        ["measure", "kiln", "redis", "kiln/redis"],
        [("DBSIZE" + mk + mr, f"{kd:,d}", f"{rd:,d}", fmt(ratio(kd, rd), ".2f")),
         ("maxmemory / DBSIZE (bytes/key)", f"{m / kd:.1f}" if kd else "n/a",
          f"{m / rd:.1f}" if rd else "n/a", fmt(ratio(m / kd if kd else None,
                                                      m / rd if rd else None), ".2f")),
         ("SETs sent", f"{ks:,d}", f"{rs:,d}", fmt(ratio(ks, rs), ".2f"))],
    )


# --- main ------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run, under a minute")
    p.add_argument("--no-build", action="store_true", help="use the existing release binary")
    p.add_argument("--binary", help="server binary of the \"kiln\" side (default: "
                   "target/release/kiln-server, built unless --no-build)")
    p.add_argument("--threads", type=int, default=0,
                   help="kiln-server --threads (default 0: one per core)")
    p.add_argument("--seed", type=int, default=7, help="seed of the Zipf key sequence")
    p.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent (default 1.0)")
    p.add_argument("--hit-maxmemory", help="maxmemory of the hit ratio rows (32mb, --quick 8mb)")
    p.add_argument("--hit-keys", type=int,
                   help="key space of the hit ratio rows (400000, --quick 120000)")
    p.add_argument("--warmup", type=int, help="warm-up GETs (default: --hit-keys)")
    p.add_argument("--gets", type=int, help="measured GETs (1000000, --quick 200000)")
    p.add_argument("--set-maxmemory", help="maxmemory of the SET rows (16mb, --quick 8mb)")
    p.add_argument("--requests", type=int, help="SETs per run without pipelining (100000, "
                   "--quick 20000; -P 16 sends 5 times as many)")
    p.add_argument("--reps", type=int, help="runs per SET row and server (2, --quick 1)")
    p.add_argument("--clients", type=int, default=50, help="redis-benchmark -c")
    p.add_argument("--keys-maxmemory", help="maxmemory of the keys-held row (32mb, "
                   "--quick 8mb)")
    p.add_argument("--tolerance", type=float, default=5.0,
                   help="percent above maxmemory that flags OVER LIMIT (default 5)")
    p.add_argument("--skip-hit", action="store_true", help="skip the hit ratio rows")
    p.add_argument("--skip-set", action="store_true", help="skip the SET while evicting rows")
    p.add_argument("--skip-keys", action="store_true", help="skip the keys-held row")
    args = p.parse_args()
    q = args.quick
    args.hit_maxmemory = parse_size(args.hit_maxmemory or ("8mb" if q else "32mb"))
    args.hit_keys = args.hit_keys or (120000 if q else 400000)
    args.warmup = args.warmup if args.warmup is not None else args.hit_keys
    args.gets = args.gets or (200000 if q else 1000000)
    args.set_maxmemory = parse_size(args.set_maxmemory or ("8mb" if q else "16mb"))
    args.requests = args.requests or (20000 if q else 100000)
    args.reps = args.reps or (1 if q else 2)
    args.keys_maxmemory = parse_size(args.keys_maxmemory or ("8mb" if q else "32mb"))

    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install redis-server redis-tools)")

    atexit.register(compare.cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, compare._on_signal)

    binary = args.binary or compare.release_binary(args.no_build)
    if os.sep not in binary:
        binary = shutil.which(binary) or binary
    is_redis = os.path.basename(binary).startswith("redis")
    extra = [] if is_redis else ["--threads", str(args.threads)]
    sides = (Side("kiln", binary, extra), Side("redis", "redis-server", []))
    tmp = tempfile.mkdtemp(prefix="evbench-")
    compare._tempdirs.append(tmp)

    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.strip()
    threads = "" if is_redis else f" (--threads {args.threads or 'all cores'})"
    report = [
        f"kiln: {binary}{threads} vs {redis_version}",
        f"{os.cpu_count()} CPUs; ratios are kiln/redis; * after a row name: a server never "
        f"evicted in that row (its numbers are those of an unbounded server)",
        "",
    ]
    limits = Limits(args.tolerance)
    t0 = time.monotonic()

    if not args.skip_hit:
        print("cache hit ratio...", flush=True)
        rows = hit_ratio(sides, args, limits)
        report += [hit_table(rows, sides, args, limits), ""]

    if not args.skip_set:
        print("SET while evicting...", flush=True)
        rows = set_evicting(sides, args, limits)
        title = (f"SET while evicting: allkeys-lru, maxmemory {human(args.set_maxmemory)}, "
                 f"redis-benchmark -t set -r {SET_KEYSPACE} -d {SET_VALUE_SIZE} "
                 f"-c {args.clients}, -n {args.requests} (P1) / {args.requests * 5} (P16), "
                 f"{args.reps} run(s) per server, after a pre-fill past the limit")
        if ("SET evicting", "kiln") in limits.never or ("SET evicting", "redis") in limits.never:
            title += "\n(* a server never evicted: see the memory limit table)"
            rows = [(label + " *",) + tuple(rest) for label, *rest in rows]
        report += [compare.throughput_table(title, rows), ""]

    if not args.skip_keys:
        print("keys held...", flush=True)
        res = keys_held(sides, args, limits, tmp)
        report += [keys_table(res, sides, args, limits), ""]

    report.append(limits.table())
    report.append("")
    report.append(f"({time.monotonic() - t0:.0f} s)")
    compare.save_report("eviction", "\n".join(report))


if __name__ == "__main__":
    main()
