#!/usr/bin/env python3
"""Kiln vs Redis, side by side: throughput, server CPU per request, memory per key.

Usage:
    python3 bench/compare.py            # full run: a few minutes on 2 cores
    python3 bench/compare.py --quick    # smoke run: well under a minute

What it does:
  1. builds Kiln (`cargo build --release -p kiln-server`, skip with --no-build);
  2. starts target/release/kiln-server and redis-server on free loopback ports, both with
     `--save '' --appendonly no`;
  3. runs the same redis-benchmark load against each: SET, GET, INCR and MSET (10 keys),
     50 clients, random keys (-r 100000), once without pipelining and once with -P 16. Runs
     alternate between the servers (and the order flips every repetition) so that machine
     noise hits both alike. Server CPU time per request comes from the utime + stime of the
     server process (/proc/<pid>/stat) read before and after each run;
  4. measures memory per key: fresh servers, 1,000,000 keys loaded with DEBUG POPULATE, and
     again with SETs of 16-byte keys and 3-byte values piped through `redis-cli --pipe`;
     used_memory and used_memory_rss (INFO memory) before and after.

Needs Python 3 (standard library only), cargo, and redis-server, redis-cli and
redis-benchmark on the PATH (Debian: apt-get install redis-server redis-tools). Every server
it starts is stopped on exit, on Ctrl-C and on SIGTERM. A copy of the report is written to
bench/out/ (ignored by git).
"""

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
TESTS = [("set", "SET"), ("get", "GET"), ("incr", "INCR"), ("mset", "MSET(10)")]
PIPELINES = [1, 16]

# Every server process started, so that cleanup can stop whatever is still running.
_servers = []
_tempdirs = []


def cleanup():
    for s in list(_servers):
        s.stop()
    for d in _tempdirs:
        shutil.rmtree(d, ignore_errors=True)


def _on_signal(signum, _frame):
    # Raising SystemExit runs `finally` blocks and atexit handlers: servers get stopped.
    sys.exit(128 + signum)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (all its threads together)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may contain spaces; the fields after it are fixed.
    fields = stat.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def proc_status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# --- a minimal RESP client, enough for INFO, DEBUG POPULATE, DBSIZE and FLUSHALL ---------


class RespError(Exception):
    pass


class Conn:
    def __init__(self, port, timeout=300):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(max(65536, n + 2 - len(self.buf)))
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"("):
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"="):
            n = int(rest)
            return None if n < 0 else self._exact(n).decode(errors="replace")
        if kind in (b"*", b"~", b">"):
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        if kind == b"%":
            return {self._reply(): self._reply() for _ in range(int(rest))}
        if kind == b"_":
            return None
        raise RespError(f"unexpected reply {line!r}")

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()


# --- servers -------------------------------------------------------------------------


class Server:
    def __init__(self, name, binary, extra=()):
        self.name = name
        self.binary = binary
        self.extra = list(extra)
        self.proc = None
        self.port = None

    def start(self):
        self.port = free_port()
        workdir = tempfile.mkdtemp(prefix=f"kiln-bench-{self.name}-")
        _tempdirs.append(workdir)
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", workdir,
        ] + self.extra
        self.log = open(os.path.join(workdir, "server.log"), "w")
        # Own session: a Ctrl-C in the terminal reaches only this script, which then stops
        # the servers itself (in order, after reporting).
        self.proc = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _servers.append(self)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"{self.name} exited at start (status {self.proc.returncode}); "
                    f"log: {self.log.name}"
                )
            try:
                c = Conn(self.port, timeout=2)
                try:
                    if c.cmd("PING") == "PONG":
                        return self
                finally:
                    c.close()
            except (OSError, RespError):
                pass
            time.sleep(0.05)
        raise SystemExit(f"{self.name} did not start on port {self.port}")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in _servers:
            _servers.remove(self)
            self.log.close()

    def call(self, *args, timeout=300):
        c = Conn(self.port, timeout=timeout)
        try:
            return c.cmd(*args)
        finally:
            c.close()

    def memory(self):
        """(used_memory, used_memory_rss) in bytes; RSS from /proc if INFO lacks it."""
        fields = {}
        try:
            info = self.call("INFO", "memory")
            for line in info.splitlines():
                k, sep, v = line.partition(":")
                if sep:
                    fields[k] = v.strip()
        except (RespError, OSError):
            pass
        used = int(fields["used_memory"]) if "used_memory" in fields else None
        if "used_memory_rss" in fields:
            rss = int(fields["used_memory_rss"])
        else:
            rss = proc_status_kib(self.pid, "VmRSS") * 1024
        return used, rss


# --- throughput ------------------------------------------------------------------------


def run_benchmark(server, test, requests, pipeline, clients, keyspace):
    """One redis-benchmark run: (requests per second, server CPU µs per request)."""
    argv = [
        "redis-benchmark",
        "-h", "127.0.0.1",
        "-p", str(server.port),
        "-t", test,
        "-n", str(requests),
        "-c", str(clients),
        "-P", str(pipeline),
        "-r", str(keyspace),
        "-q", "--csv",
    ]
    before = cpu_ticks(server.pid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    after = cpu_ticks(server.pid)
    if done.returncode != 0:
        raise SystemExit(f"redis-benchmark failed on {server.name}: {done.stderr.strip()}")
    rps = None
    for line in done.stdout.splitlines():
        cols = [c.strip('"') for c in line.split(",")]
        if len(cols) > 1 and cols[0] != "test":
            rps = float(cols[1])
    if rps is None:
        raise SystemExit(f"no result from redis-benchmark on {server.name}: {done.stdout!r}")
    cpu_us = (after - before) / CLK_TCK * 1e6 / requests
    return rps, cpu_us


def throughput(kiln, redis, args):
    """Rows of (label, kiln rps, redis rps, kiln µs/req, redis µs/req)."""
    rows = []
    for pipeline in PIPELINES:
        requests = args.requests if pipeline == 1 else args.requests * args.pipelined_factor
        for test, label in TESTS:
            acc = {s.name: {"rps": [], "cpu": 0.0, "n": 0} for s in (kiln, redis)}
            for rep in range(args.reps):
                order = (kiln, redis) if rep % 2 == 0 else (redis, kiln)
                for server in order:
                    rps, cpu = run_benchmark(
                        server, test, requests, pipeline, args.clients, args.keyspace
                    )
                    a = acc[server.name]
                    a["rps"].append(rps)
                    a["cpu"] += cpu * requests
                    a["n"] += requests
            k, r = acc[kiln.name], acc[redis.name]
            row = (
                f"{label} P{pipeline}",
                sum(k["rps"]) / len(k["rps"]),
                sum(r["rps"]) / len(r["rps"]),
                k["cpu"] / k["n"],
                r["cpu"] / r["n"],
            )
            rows.append(row)
            print(f"  {row[0]:<12} kiln {row[1]:>11,.0f} req/s   redis {row[2]:>11,.0f} req/s",
                  flush=True)
    return rows


# --- memory ----------------------------------------------------------------------------


def write_set_pipe(path, keys):
    """A RESP file of `SET <16-byte key> <3-byte value>` commands for redis-cli --pipe."""
    with open(path, "wb") as f:
        batch = []
        for i in range(keys):
            batch.append(
                b"*3\r\n$3\r\nSET\r\n$16\r\nk:%014d\r\n$3\r\n%03d\r\n" % (i, i % 1000)
            )
            if len(batch) == 10000:
                f.write(b"".join(batch))
                batch.clear()
        f.write(b"".join(batch))


def load_populate(server, keys, _pipe_file):
    server.call("DEBUG", "POPULATE", keys)


def load_pipe(server, keys, pipe_file):
    with open(pipe_file, "rb") as f:
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(server.port), "--pipe"],
            stdin=f, capture_output=True, text=True, timeout=900,
        )
    if done.returncode != 0 or "errors: 0," not in done.stdout:
        lines = (done.stdout + done.stderr).strip().splitlines()
        raise RespError(lines[-1] if lines else f"redis-cli exited {done.returncode}")


def start_with_debug(server):
    """Starts a server with DEBUG allowed from local connections (Redis 7 refuses DEBUG by
    default). A server that does not know the option is started without it."""
    plain = list(server.extra)
    server.extra = plain + ["--enable-debug-command", "local"]
    try:
        server.start()
    except SystemExit:
        server.stop()
        server.extra = plain
        server.start()


def memory(kiln_bin, kiln_extra, args):
    """Rows of (label, kiln used, redis used, kiln rss, redis rss) in bytes per key;
    a cell is None when that server could not load the data (the reason is printed)."""
    pipe_file = os.path.join(tempfile.mkdtemp(prefix="kiln-bench-pipe-"), "set.resp")
    _tempdirs.append(os.path.dirname(pipe_file))
    write_set_pipe(pipe_file, args.keys)
    variants = [
        (f"DEBUG POPULATE {args.keys}", load_populate),
        (f"SET 16B key/3B value x{args.keys} (--pipe)", load_pipe),
    ]
    rows = []
    for label, load in variants:
        cells = {}
        # Fresh servers per variant: freed memory is not reliably returned to the system,
        # so a second load into the same process would measure the allocator, not the keys.
        for server in (Server("kiln", kiln_bin, kiln_extra), Server("redis", "redis-server")):
            start_with_debug(server)
            try:
                used0, rss0 = server.memory()
                load(server, args.keys, pipe_file)
                n = server.call("DBSIZE")
                if n != args.keys:
                    raise RespError(f"DBSIZE is {n} after loading {args.keys} keys")
                # Redis refreshes its RSS figure from its cron (10 times a second).
                time.sleep(0.5)
                used1, rss1 = server.memory()
                used = None if used0 is None or used1 is None else (used1 - used0) / n
                cells[server.name] = (used, (rss1 - rss0) / n)
            except (RespError, OSError) as e:
                print(f"  {label}: {server.name} failed: {e}", flush=True)
                cells[server.name] = (None, None)
            finally:
                server.stop()
        rows.append((label, cells["kiln"][0], cells["redis"][0], cells["kiln"][1],
                     cells["redis"][1]))
    return rows


# --- report ----------------------------------------------------------------------------


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def table(title, headers, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [title, ""]
    lines.append("  ".join(h.rjust(w) if i else h.ljust(w)
                           for i, (h, w) in enumerate(zip(headers, widths))))
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--requests", type=int, help="requests per run without pipelining "
                   "(default 100000, --quick 10000)")
    p.add_argument("--pipelined-factor", type=int, default=5,
                   help="runs with -P 16 send this many times --requests (default 5)")
    p.add_argument("--reps", type=int, help="repetitions per test and server (default 2, "
                   "--quick 1)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--keyspace", type=int, default=100000, help="redis-benchmark -r")
    p.add_argument("--keys", type=int, help="keys for the memory table (default 1000000, "
                   "--quick 100000)")
    p.add_argument("--threads", type=int, default=0,
                   help="kiln-server --threads (default 0: one per core)")
    p.add_argument("--no-build", action="store_true", help="use the existing release binary")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args()
    args.requests = args.requests or (10000 if args.quick else 100000)
    args.reps = args.reps or (1 if args.quick else 2)
    args.keys = args.keys or (100000 if args.quick else 1000000)

    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install redis-server redis-tools)")

    atexit.register(cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    kiln_bin = str(target / "release" / "kiln-server")
    if not args.no_build:
        print("building kiln-server (release)...", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "kiln-server"], cwd=ROOT,
                       check=True)
    if not os.access(kiln_bin, os.X_OK):
        raise SystemExit(f"{kiln_bin} not found: build it or drop --no-build")
    kiln_extra = ["--threads", str(args.threads)]

    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.strip()
    report = [
        f"kiln-server {kiln_bin} (--threads {args.threads or 'all cores'}) vs {redis_version}",
        f"{os.cpu_count()} CPUs; redis-benchmark -c {args.clients} -r {args.keyspace}; "
        f"-n {args.requests} without pipelining, "
        f"{args.requests * args.pipelined_factor} with -P 16; {args.reps} run(s) per server "
        f"per test, alternating",
        "",
    ]

    if not args.skip_throughput:
        print("throughput...", flush=True)
        kiln = Server("kiln", kiln_bin, kiln_extra).start()
        redis = Server("redis", "redis-server").start()
        try:
            rows = throughput(kiln, redis, args)
        finally:
            kiln.stop()
            redis.stop()
        report.append(table(
            "Throughput and server CPU time per request",
            ["test", "kiln req/s", "redis req/s", "kiln/redis",
             "kiln CPU us/req", "redis CPU us/req", "kiln/redis"],
            [(label, f"{kr:,.0f}", f"{rr:,.0f}", fmt(ratio(kr, rr), ".2f"),
              f"{kc:.2f}", f"{rc:.2f}", fmt(ratio(kc, rc), ".2f"))
             for label, kr, rr, kc, rc in rows],
        ))
        report.append("")

    if not args.skip_memory:
        print("memory...", flush=True)
        rows = memory(kiln_bin, kiln_extra, args)
        report.append(table(
            "Memory per key (bytes; INFO used_memory and used_memory_rss, after - before)",
            ["load", "kiln used", "redis used", "kiln/redis",
             "kiln rss", "redis rss", "kiln/redis"],
            [(label, fmt(ku, ".1f"), fmt(ru, ".1f"), fmt(ratio(ku, ru), ".2f"),
              fmt(kr, ".1f"), fmt(rr, ".1f"), fmt(ratio(kr, rr), ".2f"))
             for label, ku, ru, kr, rr in rows],
        ))
        report.append("")

    text = "\n".join(report)
    print()
    print(text)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / time.strftime("compare-%Y%m%d-%H%M%S.txt")
    path.write_text(text + "\n")
    print(f"(saved to {path.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
