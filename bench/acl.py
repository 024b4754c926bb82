#!/usr/bin/env python3
"""Kiln vs Redis: GET and SET as an ACL user with key patterns, against the default user.

Usage:
    python3 bench/acl.py            # full run: about a minute on 2 cores
    python3 bench/acl.py --quick    # smoke run
    python3 bench/acl.py --no-build # use the existing target/release/kiln-server

Both servers run in the same run (compare.py's Server: free loopback ports, `--save ''
--appendonly no`), each with a user `bench` that may use keys `key:*` and every command
but the dangerous ones (`ACL SETUSER bench on >bp ~key:* +@all -@dangerous`). The rows:
redis-benchmark's own SET and GET tests (keys `key:__rand_int__`, -r 100000, 50 clients),
once as the default user (which may do anything: no per-command check) and once
authenticated as `bench` (`--user bench -a bp`: every command's keys are matched against
the pattern), each without pipelining and with -P 16. Runs alternate between the servers
and flip order every repetition; server CPU time per request comes from /proc/<pid>/stat.
Ratios are Kiln / Redis. A copy of the report goes to bench/out/ (ignored by git).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as c  # noqa: E402  (the shared Server, Bench and table code)


class AsUser(c.Bench):
    """A redis-benchmark test run authenticated as an ACL user."""

    def __init__(self, label, test, user, password):
        super().__init__(label, test=test, setup=add_user)
        self.auth = ["--user", user, "-a", password]

    def argv(self):
        return self.auth + super().argv()


def add_user(server, _requests, _args):
    server.call("ACL", "SETUSER", "bench", "on", ">bp", "~key:*", "+@all", "-@dangerous")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--requests", type=int)
    p.add_argument("--reps", type=int)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    args.requests = args.requests or (20000 if args.quick else 100000)
    args.reps = args.reps or (1 if args.quick else 2)
    args.pipelined_factor = 5
    args.clients = 50
    args.keyspace = 100000
    kiln_bin = c.release_binary(args.no_build)
    tests = [
        c.Bench("SET default", test="set"),
        c.Bench("GET default", test="get"),
        AsUser("SET ACL user", "set", "bench", "bp"),
        AsUser("GET ACL user", "get", "bench", "bp"),
    ]
    kiln = c.Server("kiln", kiln_bin, ["--threads", str(args.threads)]).start()
    redis = c.Server("redis", "redis-server").start()
    try:
        rows = c.run_rows(kiln, redis, tests, args)
    finally:
        kiln.stop()
        redis.stop()
    c.save_report("acl", c.throughput_table(
        "ACL: throughput and server CPU time per request, default user vs a user with key "
        "patterns", rows))


if __name__ == "__main__":
    main()
