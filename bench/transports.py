#!/usr/bin/env python3
"""Kiln vs Redis over a Unix socket and over TLS: GET and SET throughput, side by side.

Usage:
    python3 bench/transports.py              # builds release Kiln, about a minute on 2 cores
    python3 bench/transports.py --no-build   # use target/release/kiln-server as it is
    python3 bench/transports.py --requests 200000 --repeat 5

What it does:
  1. builds Kiln (`cargo build --release -p kiln-server`, skip with --no-build);
  2. makes a throwaway CA and a certificate for 127.0.0.1/localhost with the `openssl`
     command line, in a temporary directory (no TLS rows without openssl);
  3. starts target/release/kiln-server and redis-server, each with `--port 0`, a Unix
     socket and a TLS port (`--tls-auth-clients no`), `--save '' --appendonly no`;
  4. runs redis-benchmark's SET and GET (50 clients, random keys -r 100000) against each,
     over the Unix socket (`-s`) and over TLS (`--tls --cacert`), without pipelining and
     with -P 16; runs alternate between the servers and the order flips every repetition,
     and the best of --repeat runs counts;
  5. prints requests per second for both and the ratio Kiln/Redis.

Needs redis-server and redis-benchmark (built with TLS, as Debian's are) on the PATH.
"""

import argparse
import csv
import io
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILN = os.path.join(ROOT, "target", "release", "kiln-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(d):
    """A CA and a server certificate signed by it; None without openssl."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "2", "-subj", "/CN=bench CA")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost")
        with open(os.path.join(d, "ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext")
    except (OSError, subprocess.CalledProcessError):
        return None
    return {n: os.path.join(d, n) for n in ("ca.crt", "server.crt", "server.key")}


class Server:
    def __init__(self, name, binary, d, certs):
        self.name = name
        self.sock = os.path.join(d, name + ".sock")
        self.tls_port = free_port()
        args = [binary, "--port", "0", "--unixsocket", self.sock, "--save", "",
                "--appendonly", "no", "--dir", d]
        if certs:
            args += ["--tls-port", str(self.tls_port), "--tls-cert-file", certs["server.crt"],
                     "--tls-key-file", certs["server.key"], "--tls-ca-cert-file",
                     certs["ca.crt"], "--tls-auth-clients", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.sock)
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"{name} did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def bench(server, transport, certs, test, pipeline, requests):
    args = ["redis-benchmark", "-t", test, "-n", str(requests), "-c", "50", "-r", "100000",
            "-P", str(pipeline), "--csv"]
    if transport == "unix":
        args += ["-s", server.sock]
    else:
        args += ["-p", str(server.tls_port), "--tls", "--cacert", certs["ca.crt"]]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    for row in csv.reader(io.StringIO(out)):
        if row and row[0].upper() == test.upper():
            return float(row[1])
    raise SystemExit(f"no {test} row in redis-benchmark's output: {out!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--requests", type=int, default=100000, help="per unpipelined run")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "kiln-server"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory(prefix="kiln-transports-") as d:
        certs = make_certs(d)
        if not certs:
            print("openssl not found: Unix socket rows only", file=sys.stderr)
        servers = [Server("kiln", KILN, d, certs), Server("redis", "redis-server", d, certs)]
        try:
            rows = []
            for transport in ["unix"] + (["tls"] if certs else []):
                for pipeline in (1, 16):
                    for test in ("set", "get"):
                        n = a.requests * (4 if pipeline > 1 else 1)
                        best = {}
                        for rep in range(a.repeat):
                            order = servers if rep % 2 == 0 else servers[::-1]
                            for s in order:
                                rps = bench(s, transport, certs, test, pipeline, n)
                                best[s.name] = max(best.get(s.name, 0), rps)
                        label = f"{test.upper()} {transport}" + (f" -P{pipeline}" if pipeline > 1 else "")
                        rows.append((label, best["kiln"], best["redis"]))
            print(f"{'row':<16}{'kiln rps':>12}{'redis rps':>12}{'kiln/redis':>12}")
            for label, k, r in rows:
                print(f"{label:<16}{k:>12.0f}{r:>12.0f}{k / r:>12.2f}")
        finally:
            for s in servers:
                s.stop()


if __name__ == "__main__":
    main()
