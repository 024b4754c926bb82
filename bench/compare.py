#!/usr/bin/env python3
"""Kiln vs Redis, side by side: throughput, server CPU per request, memory per key.

Usage:
    python3 bench/compare.py            # full run: a few minutes on 2 cores
    python3 bench/compare.py --quick    # smoke run: well under a minute
    python3 bench/compare.py --aof      # only the append-only file rows
    python3 bench/compare.py --replication   # only the replication rows
    python3 bench/compare.py --scripting     # only the scripting rows
    python3 bench/compare.py --bits          # only the bitmap and HyperLogLog rows
    python3 bench/compare.py --geo-sort      # only the geo and SORT rows
    python3 bench/compare.py --hot-keys      # only the hot-key rows
    python3 bench/compare.py --syscalls      # syscalls per request, GET and SET rows
    python3 bench/compare.py --syscalls --hot-keys   # ... and the hot-key rows too

What it does:
  1. builds Kiln (`cargo build --release -p kiln-server`, skip with --no-build);
  2. starts target/release/kiln-server and redis-server on free loopback ports, both with
     `--save '' --appendonly no`;
  3. runs the same redis-benchmark load against each, 50 clients, random keys or members
     (-r 100000), once without pipelining and once with -P 16:
       strings      SET, GET, INCR and MSET (10 keys) (redis-benchmark's own tests);
       lists        LPUSH and RPOP (its own tests, on `mylist`), LRANGE 100 (`LRANGE mylist
                    0 99`, what its lrange_100 test sends after its LPUSHes; the list is
                    topped up to 600 elements first if the RPOPs drained it);
       sets/hashes  SADD and HSET (its own tests);
       sorted sets  ZADD (`ZADD zkey __rand_int__ m:__rand_int__`), ZRANGE 100 (`ZRANGE zkey
                    0 99` on the zset the ZADDs filled) and ZRANK on a 1,000,000-member zset
                    (`ZRANK bigz m:__rand_int__`, -r 1000000: every lookup hits), loaded into
                    both servers beforehand through `redis-cli --pipe`.
     LRANGE 100 and ZRANGE 100 send a fifth of the requests (their replies are 100 times
     larger). A row whose command a server rejects (an error reply to a probe before the
     run) reads n/a for that server. Runs alternate between the servers (and the order flips
     every repetition) so that machine noise hits both alike. Server CPU time per request
     comes from the utime + stime of the server process (/proc/<pid>/stat) read before and
     after each run;
  4. measures memory per key: fresh servers, 1,000,000 keys loaded with DEBUG POPULATE, and
     again with SETs of 16-byte keys and 3-byte values piped through `redis-cli --pipe`;
     used_memory and used_memory_rss (INFO memory) before and after;
  5. measures write throughput with the append-only file on: fresh servers started with
     `--appendonly yes --appendfsync everysec`, then `always`, each running redis-benchmark's
     SET without pipelining and with -P 16 (`always` rows send half the requests: every
     reply waits for an fsync). Skip with --skip-aof, or run only these rows with --aof;
  6. measures memory per member of one big collection: fresh servers, then one hash with
     1,000,000 fields (`m:<n>` -> `v`), one set and one zset with 1,000,000 members (`m:<n>`;
     zset scores a fixed pseudo-random permutation of 0..n-1, so ordered structures are
     built in random order as in real use), each piped through `redis-cli --pipe` into its
     own fresh pair of servers.

  7. measures scripting throughput (skip with --skip-scripting, or run only these rows
     with --scripting), on the servers of step 3, each row without pipelining and with -P 16:
       EVALSHA INCR   `return redis.call('INCR', KEYS[1])`, `EVALSHA <sha> 1 key:__rand_int__`;
       EVALSHA 5 cmd  SET and GET on KEYS[1], HSET, HINCRBY and EXPIRE on KEYS[2]
                      (`EVALSHA <sha> 2 s:__rand_int__ h:__rand_int__ v`);
       EVALSHA undecl INCR of a key the script builds from ARGV[1], declaring none
                      (`EVALSHA <sha> 0 __rand_int__`);
       FCALL INCR     `FCALL incr1 1 key:__rand_int__`, incr1 being the INCR script above
                      registered by a library `benchlib` (FUNCTION LOAD REPLACE).
     Before each run the script is loaded with SCRIPT LOAD (its SHA1, computed here, must be
     the one the server answers) or the library with FUNCTION LOAD; a server that answers
     that with an error (Kiln before FUNCTION) reads n/a on that row.

  7b. with --bits (and only then): bitmaps and HyperLogLogs, on fresh servers, each row
     without pipelining and with -P 16:
       SETBIT         `SETBIT bits:__rand_int__ 777 1` (-r bitmaps of 98 bytes; an offset
                      cannot be __rand_int__, whose leading zeros offsets refuse);
       BITCOUNT 1MB   `BITCOUNT bits1m` over a 1 MB string of pseudo-random bytes;
       BITOP 2x1MB    `BITOP XOR bitsdst bits1m bits1m2` (two 1 MB strings; a fifth of the
                      requests, as the two rows above);
       PFADD          `PFADD hll m:__rand_int__` (one HyperLogLog, dense after a few
                      thousand elements);
       PFCOUNT 1 key  `PFCOUNT hll1` (50,000 elements, cached cardinality);
       PFCOUNT 3 keys `PFCOUNT hll1 hll2 hll3` (dense, merged on every call).
  7b. measures geo and SORT throughput (skip with --skip-geo-sort, or run only these rows
     with --geo-sort), on the servers of step 3, each row without pipelining and with -P 16:
       GEOADD         `GEOADD geokey 13.__rand_int__ 38.__rand_int__ m:__rand_int__`;
       GEOSEARCH      `GEOSEARCH geobig FROMMEMBER m:__rand_int__ BYRADIUS 200 km` in a
                      100,000-member geo set of pseudo-random positions over the whole map
                      (about 25 members a search), -r 100000 so every centre exists;
       SORT BY GET    `SORT sortlist BY w_* GET # GET o_*->f` on a 1,000-element list, its
                      weights in 1,000 string keys and the GET field in 1,000 hashes
                      (a hundredth of the requests).
     A server that rejects the probe reads n/a.

  7c. measures hot keys (skip with --skip-hot-keys, or run only these rows with --hot-keys),
     on the servers of step 3, each row without pipelining and with -P 16:
       INCR 1 key     `INCR hotcounter`: every request writes the same key;
       ZADD 1 key     `ZADD hotz __rand_int__ m:__rand_int__` (-r 100000): one sorted set
                      takes every write (the ZADD row of step 3 with its own key);
       GET/SET skewed a skewed GET/SET mix. redis-benchmark has no Zipf option, so six
                      redis-benchmark processes run at once against the server, the 50
                      clients split between them: GET and SET (3:1) over `key:__rand_int__`
                      with -r 10 (60% of the load), -r 1000 (30%) and -r 100000 (10%). The
                      ranges overlap (key:0..9 lie in all three), so about 60% of the
                      requests go to 10 keys, 30% to the next 990 and 10% to the other 99,000
                      (the SKEW table). Each process gets a share of the clients by weight
                      (largest remainder, at least one) and of the requests in proportion to
                      its clients, so all finish at about the same time; the row's req/s is
                      all the requests over the wall time from the first process's start to
                      the last one's exit (which includes their connection set-up, a few ms).
                      The keys key:0..99999 are set (3-byte values) before the first run.
  7d. with --syscalls: syscalls per request. Around each run of the GET and SET rows (and,
     with --hot-keys, of the hot-key rows), `perf stat -e syscalls:sys_enter_<name>,... -p
     <server pid>` counts, over all the server's threads, recvfrom, sendto, read, write,
     writev, epoll_wait, epoll_pwait, io_uring_enter and futex calls (SYSCALLS); the count
     over the run divided by its requests is printed per server, with each syscall's share.
     perf starts half a second before the load and stops right after it, so an idle
     server's own ticks (Redis's serverCron at hz 10, Kiln's cron) add a few calls to runs
     of 10,000+ requests. Where the syscall tracepoints are unavailable (no perf, no
     tracefs, not root), `strace -c -f -p <pid>` counts instead, which the report says: it
     slows the server many times over, so its req/s are then not comparable. The req/s of
     these rows are measured under perf (a counting probe on each syscall: a few percent).

  8. with --replication (and only then): replication, Kiln to Kiln against Redis to Redis.
     Full sync time: a primary loaded with DEBUG POPULATE --keys, then a replica started
     with --replicaof; the time from its start until its link is up with every key loaded
     (Redis primaries run with repl-diskless-sync-delay 0, so neither side waits for more
     replicas). Primary write throughput with two replicas attached: redis-benchmark's SET
     without pipelining and with -P 16 on the primary. Replication lag under load: while
     the -P 16 SET load runs, the primary's master_repl_offset minus each replica's
     slave_repl_offset is sampled every 50 ms (mean and max, bytes), then the time until
     both replicas caught up once the load stopped.

Needs Python 3 (standard library only), cargo, and redis-server, redis-cli and
redis-benchmark on the PATH (Debian: apt-get install redis-server redis-tools). Every server
it starts is stopped on exit, on Ctrl-C and on SIGTERM. A copy of the report is written to
bench/out/ (ignored by git). Servers listen on free loopback ports; KILN_BENCH_PORTS=LO-HI
(e.g. 7800-7899) restricts them to that range.
"""

import argparse
import atexit
import hashlib
import os
import random
import shutil
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PIPELINES = [1, 16]
# Elements of `mylist` before LRANGE 100 (redis-benchmark's lrange_600 size) and their value
# (its default 3-byte payload).
LIST_FILL = 600
LIST_VALUE = b"xxx"
# The big zset of the ZRANK row: members m:000000000000 .. (redis-benchmark's __rand_int__
# is 12 zero-padded digits, so every lookup names an existing member).
BIG_ZSET = "bigz"


class Bench:
    """One throughput row: a redis-benchmark test (`-t name`) or a custom command line.

    `scale` multiplies the request count; `probe` is a command sent (untimed) before each
    run, whose error reply marks the command unsupported on that server; `setup(server,
    requests, args)` prepares data (untimed); `keyspace` overrides -r."""

    def __init__(self, label, test=None, command=None, scale=1.0, probe=None, setup=None,
                 keyspace=None, teardown=None, runner=None):
        self.teardown = teardown
        self.runner = runner
        self.label = label
        self.test = test
        self.command = command
        self.scale = scale
        self.probe = probe
        self.setup = setup
        self.keyspace = keyspace

    def argv(self):
        return ["-t", self.test] if self.test else list(self.command)


def top_up_list(server, want):
    """RPUSHes to `mylist` until it has at least `want` elements."""
    have = server.call("LLEN", "mylist")
    if have < want:
        push_batched(server, "RPUSH", "mylist", [LIST_VALUE] * (want - have))


def list_for_rpop(server, requests, _args):
    """Every RPOP must pop something (the LPUSH row normally left enough)."""
    top_up_list(server, requests)


def list_for_lrange(server, _requests, _args):
    """LRANGE 0 99 must return 100 elements (the RPOP row may have drained the list)."""
    top_up_list(server, LIST_FILL)


def top_up_zkey(server, _requests, _args):
    """`zkey` gets at least 100 members (the ZADD row normally filled it already)."""
    if server.call("ZCARD", "zkey") < 100:
        flat = []
        for i in range(100):
            flat += [str(i), f"m:{i:012d}"]
        server.call("ZADD", "zkey", *flat)


def check_big_zset(server, _requests, args):
    n = server.call("ZCARD", BIG_ZSET)
    if n != args.members:
        raise RespError(f"{BIG_ZSET} has {n} members, expected {args.members}")


# --- pub/sub and transaction rows ---------------------------------------------------------

# Subscriber connections per server port, drained by a background thread.
_subscribers = {}


def _drain(socks, stop):
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.1):
            try:
                if not key.fileobj.recv(1 << 20):
                    sel.unregister(key.fileobj)
            except (BlockingIOError, OSError):
                pass
    sel.close()


def subscribers(n):
    """Setup of a PUBLISH row: `n` connections SUBSCRIBEd to `chan`, read continuously."""

    def setup(server, _requests, _args):
        stop_subscribers(server)
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nchan\r\n")
            s.recv(64)
            socks.append(s)
        stop = threading.Event()
        t = threading.Thread(target=_drain, args=(socks, stop), daemon=True)
        t.start()
        _subscribers[server.port] = (socks, stop, t)

    return setup


def stop_subscribers(server, *_):
    entry = _subscribers.pop(server.port, None)
    if entry:
        socks, stop, t = entry
        stop.set()
        t.join()
        for s in socks:
            s.close()


def run_transactions(server, requests, pipeline, clients):
    """MULTI / INCR / EXEC from `clients` connections, `pipeline` transactions in flight per
    connection (redis-benchmark cannot send transactions): (tx per second, CPU µs per tx)."""
    tx = b"*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n*1\r\n$4\r\nEXEC\r\n"
    per_conn = max(1, requests // clients)
    conns = []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(s)
    sel = selectors.DefaultSelector()
    state = {}
    before = cpu_ticks(server.pid)
    start = time.monotonic()
    for s in conns:
        batch = min(pipeline, per_conn)
        s.sendall(tx * batch)
        # [sent, done, CRLFs still expected for the batch in flight]
        state[s] = [batch, 0, 4 * batch]
        sel.register(s, selectors.EVENT_READ)
    live = len(conns)
    while live:
        for key, _ in sel.select():
            s = key.fileobj
            st = state[s]
            data = s.recv(1 << 16)
            st[2] -= data.count(b"\r\n")
            if st[2] > 0:
                continue
            st[1] = st[0]
            if st[1] >= per_conn:
                sel.unregister(s)
                live -= 1
                continue
            batch = min(pipeline, per_conn - st[1])
            st[0] += batch
            st[2] = 4 * batch
            s.sendall(tx * batch)
    elapsed = time.monotonic() - start
    after = cpu_ticks(server.pid)
    for s in conns:
        s.close()
    done = per_conn * clients
    return done / elapsed, (after - before) / CLK_TCK * 1e6 / done


def build_tests(args):
    n = args.members
    size = f"{n // 1000000}M" if n % 1000000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else n
    return [
        Bench("SET", test="set"),
        Bench("GET", test="get"),
        Bench("INCR", test="incr"),
        Bench("MSET(10)", test="mset"),
        Bench("LPUSH", test="lpush", probe=("LLEN", "mylist")),
        Bench("RPOP", test="rpop", probe=("LLEN", "mylist"), setup=list_for_rpop),
        Bench("LRANGE 100", command=("LRANGE", "mylist", "0", "99"), scale=0.2,
              probe=("LLEN", "mylist"), setup=list_for_lrange),
        Bench("SADD", test="sadd", probe=("SCARD", "myset")),
        Bench("HSET", test="hset", probe=("HLEN", "myhash")),
        Bench("ZADD", command=("ZADD", "zkey", "__rand_int__", "m:__rand_int__"),
              probe=("ZCARD", "zkey")),
        Bench("ZRANGE 100", command=("ZRANGE", "zkey", "0", "99"), scale=0.2,
              probe=("ZCARD", "zkey"), setup=top_up_zkey),
        Bench(f"ZRANK {size}", command=("ZRANK", BIG_ZSET, "m:__rand_int__"),
              probe=("ZCARD", BIG_ZSET), setup=check_big_zset, keyspace=n),
        Bench("PUBLISH 1 sub", command=("PUBLISH", "chan", "hello-world"),
              probe=("PUBSUB", "NUMPAT"), setup=subscribers(1), teardown=stop_subscribers),
        Bench("PUBLISH 100 subs", command=("PUBLISH", "chan", "hello-world"), scale=0.2,
              probe=("PUBSUB", "NUMPAT"), setup=subscribers(100), teardown=stop_subscribers),
        Bench("MULTI/INCR/EXEC", scale=0.2, runner=run_transactions),
        Bench("XADD *", command=("XADD", "mystream", "*", "f", "v"), probe=("XLEN", "mystream")),
        Bench("XRANGE 100", command=("XRANGE", "mystream", "-", "+", "COUNT", "100"),
              scale=0.2, probe=("XLEN", "mystream"), setup=top_up_stream),
        Bench("XREADGROUP+XACK", scale=0.2, probe=("XLEN", "mystream"),
              setup=stream_group, runner=run_consumers),
    ]


# --- scripting -----------------------------------------------------------------------

SCRIPT_INCR = "return redis.call('INCR', KEYS[1])"
SCRIPT_FIVE = (
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "redis.call('GET', KEYS[1])\n"
    "redis.call('HSET', KEYS[2], 'f', ARGV[1])\n"
    "local n = redis.call('HINCRBY', KEYS[2], 'n', 1)\n"
    "redis.call('EXPIRE', KEYS[2], 100)\n"
    "return n"
)
SCRIPT_UNDECLARED = "return redis.call('INCR', 'u:' .. ARGV[1])"
FUNCTION_LIB = (
    "#!lua name=benchlib\n"
    "redis.register_function('incr1', function(keys, args) "
    "return redis.call('INCR', keys[1]) end)"
)


def sha1_hex(script):
    return hashlib.sha1(script.encode()).hexdigest()


def script_loaded(script):
    """A setup that checks SCRIPT LOAD gave the SHA1 the row's EVALSHA sends."""
    def setup(server, _requests, _args):
        sha = server.call("SCRIPT", "LOAD", script)
        if sha != sha1_hex(script):
            raise RespError(f"SCRIPT LOAD answered {sha!r}, not {sha1_hex(script)}")
    return setup


def evalsha(label, script, *rest):
    """An EVALSHA row; its probe loads the script (an error: n/a on that server)."""
    return Bench(label, command=("EVALSHA", sha1_hex(script)) + rest,
                 probe=("SCRIPT", "LOAD", script), setup=script_loaded(script))


def build_scripting_tests(_args):
    return [
        evalsha("EVALSHA INCR", SCRIPT_INCR, "1", "key:__rand_int__"),
        evalsha("EVALSHA 5 cmd", SCRIPT_FIVE, "2", "s:__rand_int__", "h:__rand_int__", "v"),
        evalsha("EVALSHA undecl", SCRIPT_UNDECLARED, "0", "__rand_int__"),
        # FUNCTION LOAD is the probe: a server without functions reads n/a here.
        Bench("FCALL INCR", command=("FCALL", "incr1", "1", "key:__rand_int__"),
              probe=("FUNCTION", "LOAD", "REPLACE", FUNCTION_LIB)),
    ]


# --- bitmaps and HyperLogLog ---------------------------------------------------------

def big_bitmaps(server, _requests, _args):
    """Two 1 MB strings of pseudo-random bytes (the same in both servers)."""
    rnd = random.Random(7)
    for key in ("bits1m", "bits1m2"):
        server.call("SET", key, bytes(rnd.getrandbits(8) for _ in range(1 << 20)))


def filled_hlls(server, _requests, _args):
    """hll1..hll3 with 50,000 elements each (overlapping), all dense."""
    for j, key in enumerate(("hll1", "hll2", "hll3")):
        server.call("DEL", key)
        for start in range(0, 50000, 5000):
            server.call("PFADD", key, *[f"e:{j * 20000 + i}" for i in range(start, start + 5000)])
        server.call("PFCOUNT", key)


def build_bits_tests(_args):
    return [
        Bench("SETBIT", command=("SETBIT", "bits:__rand_int__", "777", "1"),
              probe=("GETBIT", "bits:0", "0")),
        Bench("BITCOUNT 1MB", command=("BITCOUNT", "bits1m"), scale=0.2,
              probe=("BITCOUNT", "nokey"), setup=big_bitmaps),
        Bench("BITOP 2x1MB", command=("BITOP", "XOR", "bitsdst", "bits1m", "bits1m2"),
              scale=0.2, probe=("BITCOUNT", "nokey"), setup=big_bitmaps),
        Bench("PFADD", command=("PFADD", "hll", "m:__rand_int__"), probe=("PFCOUNT", "hll")),
        Bench("PFCOUNT 1 key", command=("PFCOUNT", "hll1"), probe=("PFCOUNT", "hll1"),
              setup=filled_hlls),
        Bench("PFCOUNT 3 keys", command=("PFCOUNT", "hll1", "hll2", "hll3"), scale=0.2,
              probe=("PFCOUNT", "hll1"), setup=filled_hlls),
    ]


# --- geo and SORT --------------------------------------------------------------------

GEO_BIG = "geobig"
GEO_MEMBERS = 100000
SORT_LIST = "sortlist"
SORT_ELEMENTS = 1000


def load_geo_big(server, _requests, _args):
    """GEO_BIG holds GEO_MEMBERS members `m:<12 digits>` at fixed pseudo-random positions."""
    if server.call("ZCARD", GEO_BIG) == GEO_MEMBERS:
        return
    server.call("DEL", GEO_BIG)
    rnd = random.Random(16)
    values = []
    for i in range(GEO_MEMBERS):
        values += [f"{rnd.uniform(-180, 180):.6f}", f"{rnd.uniform(-85, 85):.6f}",
                   f"m:{i:012d}"]
    push_batched(server, "GEOADD", GEO_BIG, values, batch=3000)


def load_sort_data(server, _requests, _args):
    """SORT_LIST holds 0..SORT_ELEMENTS-1 shuffled, `w_<n>` a weight and `o_<n>` a hash
    with field `f` for each."""
    server.call("DEL", SORT_LIST)
    rnd = random.Random(3)
    items = list(range(SORT_ELEMENTS))
    rnd.shuffle(items)
    push_batched(server, "RPUSH", SORT_LIST, items)
    c = Conn(server.port)
    try:
        c.pipeline([("MSET",) + tuple(x for i in items for x in (f"w_{i}", str(rnd.random())))])
        c.pipeline([("HSET", f"o_{i}", "f", f"object {i}") for i in items])
    finally:
        c.close()


def build_geo_sort_tests(_args):
    return [
        Bench("GEOADD", command=("GEOADD", "geokey", "13.__rand_int__", "38.__rand_int__",
                                 "m:__rand_int__"),
              probe=("GEOADD", "geokey", "13", "38", "probe")),
        Bench("GEOSEARCH 100k", command=("GEOSEARCH", GEO_BIG, "FROMMEMBER", "m:__rand_int__",
                                         "BYRADIUS", "200", "km"),
              probe=("GEOPOS", GEO_BIG, "x"), setup=load_geo_big, keyspace=GEO_MEMBERS,
              scale=0.2),
        Bench("SORT BY GET", command=("SORT", SORT_LIST, "BY", "w_*", "GET", "#", "GET",
                                      "o_*->f"),
              probe=("SORT", "nosuchlist"), setup=load_sort_data, scale=0.01),
    ]


# --- hot keys --------------------------------------------------------------------------

# The skewed key distribution: (redis-benchmark -r, share of the load). The ranges overlap
# (key:0..9 are in all three), so ~60% of requests hit 10 keys, ~30% the next 990 and ~10%
# the other 99,000.
SKEW = [(10, 0.6), (1000, 0.3), (100000, 0.1)]
# The command mix of a skewed row: (redis-benchmark arguments, share of the load).
SKEW_MIX = [(("-t", "get"), 0.75), (("-t", "set"), 0.25)]
FILL_KEYS = 100000


def split_by_weight(total, weights, minimum=1):
    """Integers proportional to `weights` summing to `total` (largest remainder), each at
    least `minimum` (so `total` must be at least minimum * len(weights))."""
    total = max(total, minimum * len(weights))
    wsum = sum(weights)
    exact = [total * w / wsum for w in weights]
    out = [max(minimum, int(x)) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    i = 0
    while sum(out) < total:
        out[order[i % len(order)]] += 1
        i += 1
    while sum(out) > total:
        j = max(range(len(out)), key=lambda k: out[k])
        out[j] -= 1
    return out


def skewed_jobs(requests, clients, mix=SKEW_MIX, skew=SKEW, extra=()):
    """The redis-benchmark processes of a skewed row: a list of (arguments, requests,
    clients, keyspace), one per (command, key range), clients split by weight and requests
    in proportion to clients."""
    specs = [(cmd, r, share * w) for cmd, share in mix for r, w in skew]
    cl = split_by_weight(clients, [w for _, _, w in specs])
    req = split_by_weight(requests, cl)
    return [(list(cmd) + list(extra), n, c, r) for (cmd, r, _), n, c in zip(specs, req, cl)]


def run_concurrent(server, jobs, pipeline):
    """Runs redis-benchmark processes at once against `server`, one per job (arguments,
    requests, clients, keyspace): (requests per second over the wall time from the first
    start to the last exit, server CPU µs per request)."""
    procs = []
    total = sum(n for _, n, _, _ in jobs)
    before = cpu_ticks(server.pid)
    start = time.monotonic()
    for argv_tail, n, clients, keyspace in jobs:
        argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(server.port), "-n", str(n),
                "-c", str(clients), "-P", str(pipeline), "-r", str(keyspace), "-q",
                "--csv"] + list(argv_tail)
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    failed = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0 or "," not in out:
            failed.append((err or out).strip())
    elapsed = time.monotonic() - start
    after = cpu_ticks(server.pid)
    if failed:
        raise SystemExit(f"redis-benchmark failed on {server.name}: {failed[0]}")
    return total / elapsed, (after - before) / CLK_TCK * 1e6 / total


def skewed_runner(mix=SKEW_MIX, skew=SKEW):
    """A Bench runner for a skewed row (see skewed_jobs)."""
    def runner(server, requests, pipeline, clients):
        return run_concurrent(server, skewed_jobs(requests, clients, mix, skew), pipeline)
    return runner


def fill_keys(server, _requests=None, _args=None, n=FILL_KEYS):
    """key:<12 digits> for 0..n-1 (3-byte values, redis-benchmark's SET), unless the last
    one exists already."""
    if server.call("EXISTS", "key:%012d" % (n - 1)):
        return
    c = Conn(server.port)
    try:
        batch = []
        for lo in range(0, n, 1000):
            flat = ["MSET"]
            for i in range(lo, min(n, lo + 1000)):
                flat += ["key:%012d" % i, "xxx"]
            batch.append(flat)
            if len(batch) == 10:
                c.pipeline(batch)
                batch = []
        if batch:
            c.pipeline(batch)
    finally:
        c.close()


def build_hot_key_tests(_args):
    return [
        Bench("INCR 1 key", command=("INCR", "hotcounter")),
        Bench("ZADD 1 key", command=("ZADD", "hotz", "__rand_int__", "m:__rand_int__"),
              probe=("ZCARD", "hotz")),
        Bench("GET/SET skewed", runner=skewed_runner(), setup=fill_keys),
    ]


def build_syscall_tests(_args):
    return [Bench("GET", test="get", setup=fill_keys), Bench("SET", test="set")]


# --- syscalls per request ------------------------------------------------------------

SYSCALLS = ["recvfrom", "sendto", "read", "write", "writev", "epoll_wait", "epoll_pwait",
            "io_uring_enter", "futex"]
_syscall_tool = []


def syscall_tool():
    """"perf" when the syscall tracepoints can be counted, else "strace" when strace is on
    the PATH, else None (checked once)."""
    if not _syscall_tool:
        tool = None
        if shutil.which("perf"):
            events = ",".join(f"syscalls:sys_enter_{n}" for n in SYSCALLS)
            try:
                r = subprocess.run(["perf", "stat", "-x", ",", "-e", events, "--", "true"],
                                   capture_output=True, text=True, timeout=30)
                if r.returncode == 0 and "<not supported>" not in r.stderr:
                    tool = "perf"
            except (OSError, subprocess.TimeoutExpired):
                pass
        if tool is None and shutil.which("strace"):
            tool = "strace"
        _syscall_tool.append(tool)
    return _syscall_tool[0]


class SyscallCounter:
    """Counts the SYSCALLS of process `pid` (all its threads) while the `with` block runs:
    `counts` maps each name to its count afterwards."""

    def __init__(self, pid):
        self.pid = pid
        self.counts = {}
        self.tool = syscall_tool()

    def __enter__(self):
        fd, self.out = tempfile.mkstemp(prefix="kiln-bench-syscalls-")
        os.close(fd)
        if self.tool == "perf":
            events = ",".join(f"syscalls:sys_enter_{n}" for n in SYSCALLS)
            argv = ["perf", "stat", "-x", ",", "-o", self.out, "-e", events,
                    "-p", str(self.pid)]
        elif self.tool == "strace":
            argv = ["strace", "-c", "-f", "-o", self.out, "-p", str(self.pid)]
        else:
            raise SystemExit("--syscalls needs perf (syscall tracepoints) or strace")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        # Neither tool says when it is attached: give it time before the load starts.
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with open(self.out) as f:
            text = f.read()
        os.remove(self.out)
        if self.tool == "perf":
            for line in text.splitlines():
                cols = line.split(",")
                if len(cols) > 2 and cols[2].startswith("syscalls:sys_enter_"):
                    name = cols[2][len("syscalls:sys_enter_"):]
                    self.counts[name] = int(cols[0]) if cols[0].isdigit() else 0
        else:
            # strace -c: "% time  seconds  usecs/call  calls  errors  syscall".
            for line in text.splitlines():
                cols = line.split()
                if cols and cols[-1] in SYSCALLS:
                    nums = [c for c in cols[:-1] if c.isdigit()]
                    if len(cols) >= 5 and nums:
                        self.counts[cols[-1]] = int(cols[3])
        return False


def syscall_table(title, rows):
    """A table of (label, kiln counts per request, redis counts per request): the total of
    SYSCALLS per request and, per server, the syscalls that make it up."""
    def total(c):
        return None if c is None else sum(c.values())

    def parts(c):
        if c is None:
            return "n/a"
        return " ".join(f"{n} {v:.2f}" for n, v in sorted(c.items(), key=lambda x: -x[1])
                        if v >= 0.005) or "-"

    return table(
        title,
        ["test", "kiln sys/req", "redis sys/req", "kiln/redis", "kiln: per request",
         "redis: per request"],
        [(label, fmt(total(k), ".2f"), fmt(total(r), ".2f"), fmt(ratio(total(k), total(r)),
          ".2f"), parts(k), parts(r)) for label, k, r in rows],
    )


def top_up_stream(server, _requests, _args):
    """`mystream` gets at least 100 entries (the XADD row normally filled it already)."""
    have = server.call("XLEN", "mystream")
    for _ in range(have, 100):
        server.call("XADD", "mystream", "*", "f", "v")


def stream_group(server, requests, _args):
    """A fresh stream with `requests` entries and a consumer group at its start."""
    server.call("DEL", "jobs")
    c = Conn(server.port)
    batch = []
    for i in range(requests):
        batch.append(("XADD", "jobs", "*", "f", str(i)))
        if len(batch) == 1000:
            c.pipeline(batch)
            batch = []
    if batch:
        c.pipeline(batch)
    c.close()
    server.call("XGROUP", "CREATE", "jobs", "g", "0")


def run_consumers(server, requests, pipeline, clients):
    """Consumers in one group, each looping XREADGROUP COUNT `pipeline` then XACK of what
    it got, until the group has delivered `requests` entries: (entries per second, server
    CPU µs per entry)."""
    conns = [(Conn(server.port), "c%d" % i) for i in range(clients)]
    done = 0
    before = cpu_ticks(server.pid)
    start = time.monotonic()
    active = list(conns)
    while active and done < requests:
        still = []
        for c, name in active:
            ids = stream_ids(c.cmd("XREADGROUP", "GROUP", "g", name, "COUNT", pipeline,
                                   "STREAMS", "jobs", ">"))
            if not ids:
                continue
            c.cmd("XACK", "jobs", "g", *ids)
            done += len(ids)
            still.append((c, name))
        active = still
    elapsed = time.monotonic() - start
    after = cpu_ticks(server.pid)
    for c, _ in conns:
        c.close()
    done = max(done, 1)
    return done / elapsed, (after - before) / CLK_TCK * 1e6 / done


def stream_ids(reply):
    """The entry IDs of an XREADGROUP reply ([[key, [[id, fields], ...]]] or None)."""
    if not reply:
        return []
    entries = reply[0][1]
    return [e[0] for e in entries]


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


def prepare(tools=("redis-server", "redis-cli", "redis-benchmark")):
    """Checks that the Redis tools are on the PATH, and stops every server started here on
    exit, on Ctrl-C and on SIGTERM."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install redis-server redis-tools)")
    atexit.register(cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


_next_port = [None]


def free_port():
    """A free loopback port: any (port 0), or the next free one in KILN_BENCH_PORTS=LO-HI."""
    span = os.environ.get("KILN_BENCH_PORTS")
    if not span:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    lo, _, hi = span.partition("-")
    lo, hi = int(lo), int(hi or lo)
    start = _next_port[0] if _next_port[0] is not None else lo
    for i in range(hi - lo + 1):
        port = lo + (start - lo + i) % (hi - lo + 1)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _next_port[0] = port + 1 if port < hi else lo
        return port
    raise SystemExit(f"no free port in KILN_BENCH_PORTS={span}")


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

    def pipeline(self, commands):
        """Sends every command, then reads all their replies."""
        out = []
        for args in commands:
            out.append(b"*%d\r\n" % len(args))
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return [self._reply() for _ in commands]

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


def run_benchmark(server, bench, requests, pipeline, clients, keyspace):
    """One redis-benchmark run: (requests per second, server CPU µs per request)."""
    argv = [
        "redis-benchmark",
        "-h", "127.0.0.1",
        "-p", str(server.port),
        "-n", str(requests),
        "-c", str(clients),
        "-P", str(pipeline),
        "-r", str(keyspace),
        "-q", "--csv",
    ] + bench.argv()
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


def supports(server, bench):
    """Whether the server accepts the row's probe command (an error reply means no)."""
    if bench.probe is None:
        return True
    try:
        server.call(*bench.probe)
        return True
    except RespError:
        return False


def write_zadd_pipe(path, key, members, member_fmt, batch=1000):
    """A RESP file of `ZADD key score member ...` commands (`batch` pairs each) for
    redis-cli --pipe: members `member_fmt % i` for i in 0..members-1, scores a fixed
    pseudo-random permutation of the same range."""
    scores = list(range(members))
    random.Random(7).shuffle(scores)

    def args(lo, hi):
        out = []
        for i in range(lo, hi):
            out += [b"%d" % scores[i], member_fmt % i]
        return out

    write_batched_pipe(path, [b"ZADD", key.encode()], members, batch, args)


def load_big_zset(servers, args):
    """Loads BIG_ZSET into every server (untimed setup of the ZRANK row); a server that
    cannot take it is reported and its ZRANK row reads n/a."""
    pipe_file = os.path.join(tempfile.mkdtemp(prefix="kiln-bench-pipe-"), "bigz.resp")
    _tempdirs.append(os.path.dirname(pipe_file))
    write_zadd_pipe(pipe_file, BIG_ZSET, args.members, b"m:%012d")
    for server in servers:
        try:
            server.call("DEL", BIG_ZSET)
            load_pipe(server, args.members, pipe_file)
        except (RespError, OSError) as e:
            print(f"  loading {BIG_ZSET}: {server.name} failed: {e}", flush=True)


def mean_rps(acc):
    return sum(acc["rps"]) / len(acc["rps"]) if acc["rps"] else None


def cpu_per_req(acc):
    return acc["cpu"] / acc["n"] if acc["n"] else None


def throughput(kiln, redis, args):
    """Rows of (label, kiln rps, redis rps, kiln µs/req, redis µs/req); a cell is None
    when that server rejects the row's command."""
    tests = build_tests(args)
    load_big_zset((kiln, redis), args)
    return run_rows(kiln, redis, tests, args)


def scripting_throughput(kiln, redis, args):
    """Rows like throughput()'s for EVALSHA and FCALL."""
    return run_rows(kiln, redis, build_scripting_tests(args), args)


def bits_throughput(kiln, redis, args):
    """Rows like throughput()'s for the bitmap and HyperLogLog commands."""
    return run_rows(kiln, redis, build_bits_tests(args), args)


def geo_sort_throughput(kiln, redis, args):
    """Rows like throughput()'s for GEOADD, GEOSEARCH and SORT."""
    return run_rows(kiln, redis, build_geo_sort_tests(args), args)


def hot_key_throughput(kiln, redis, args, syscalls=None):
    """Rows like throughput()'s for the hot-key rows."""
    return run_rows(kiln, redis, build_hot_key_tests(args), args, syscalls)


def run_rows(kiln, redis, tests, args, syscalls=None):
    """Runs each of `tests` on both servers, without pipelining then with -P 16. With a
    list as `syscalls`, every run is counted by a SyscallCounter and (label, kiln syscalls
    per request, redis syscalls per request) is appended to it per row."""
    rows = []
    for pipeline in PIPELINES:
        base = args.requests if pipeline == 1 else args.requests * args.pipelined_factor
        for bench in tests:
            requests = max(1, int(base * bench.scale))
            keyspace = bench.keyspace or args.keyspace
            acc = {s.name: {"rps": [], "cpu": 0.0, "n": 0, "sys": {}} for s in (kiln, redis)}
            for rep in range(args.reps):
                order = (kiln, redis) if rep % 2 == 0 else (redis, kiln)
                for server in order:
                    a = acc[server.name]
                    if a.get("skip"):
                        continue
                    try:
                        if not supports(server, bench):
                            raise RespError("command not supported")
                        if bench.setup:
                            bench.setup(server, requests, args)
                    except (RespError, OSError) as e:
                        print(f"  {bench.label} P{pipeline}: {server.name}: {e}", flush=True)
                        a["skip"] = True
                        continue
                    counter = SyscallCounter(server.pid) if syscalls is not None else None
                    if counter:
                        counter.__enter__()
                    try:
                        if bench.runner:
                            rps, cpu = bench.runner(server, requests, pipeline, args.clients)
                        else:
                            rps, cpu = run_benchmark(
                                server, bench, requests, pipeline, args.clients, keyspace
                            )
                    finally:
                        if counter:
                            counter.__exit__(None, None, None)
                    if counter:
                        for name, n in counter.counts.items():
                            a["sys"][name] = a["sys"].get(name, 0) + n
                    if bench.teardown:
                        bench.teardown(server)
                    a["rps"].append(rps)
                    a["cpu"] += cpu * requests
                    a["n"] += requests
            k, r = acc[kiln.name], acc[redis.name]
            row = (f"{bench.label} P{pipeline}", mean_rps(k), mean_rps(r), cpu_per_req(k),
                   cpu_per_req(r))
            rows.append(row)
            print(f"  {row[0]:<16} kiln {fmt(row[1], '>11,.0f')} req/s   "
                  f"redis {fmt(row[2], '>11,.0f')} req/s", flush=True)
            if syscalls is not None:
                per = [{n: c / x["n"] for n, c in x["sys"].items()} if x["n"] else None
                       for x in (k, r)]
                syscalls.append((row[0], per[0], per[1]))
    return rows


def aof_throughput(kiln_bin, kiln_extra, args):
    """Rows like throughput()'s for SET with the AOF on, per fsync policy: fresh servers
    per policy (each writes its own AOF in its own temporary directory)."""
    rows = []
    bench = Bench("SET", test="set")
    for policy in ("everysec", "always"):
        extra = ["--appendonly", "yes", "--appendfsync", policy]
        kiln = Server("kiln", kiln_bin, kiln_extra + extra).start()
        redis = Server("redis", "redis-server", extra).start()
        try:
            for pipeline in PIPELINES:
                base = args.requests if pipeline == 1 else args.requests * args.pipelined_factor
                requests = max(1, base // 2 if policy == "always" else base)
                acc = {s.name: {"rps": [], "cpu": 0.0, "n": 0} for s in (kiln, redis)}
                for rep in range(args.reps):
                    order = (kiln, redis) if rep % 2 == 0 else (redis, kiln)
                    for server in order:
                        rps, cpu = run_benchmark(
                            server, bench, requests, pipeline, args.clients, args.keyspace
                        )
                        a = acc[server.name]
                        a["rps"].append(rps)
                        a["cpu"] += cpu * requests
                        a["n"] += requests
                k, r = acc[kiln.name], acc[redis.name]
                row = (f"SET P{pipeline} AOF {policy}", mean_rps(k), mean_rps(r),
                       cpu_per_req(k), cpu_per_req(r))
                rows.append(row)
                print(f"  {row[0]:<22} kiln {fmt(row[1], '>11,.0f')} req/s   "
                      f"redis {fmt(row[2], '>11,.0f')} req/s", flush=True)
        finally:
            kiln.stop()
            redis.stop()
    return rows


# --- replication ---------------------------------------------------------------------


def info_fields(server, section):
    """INFO `section` as a dict."""
    fields = {}
    for line in server.call("INFO", section).splitlines():
        k, sep, v = line.partition(":")
        if sep:
            fields[k] = v.strip()
    return fields


def wait_linked(replica, keys, timeout=900):
    """Waits until a replica's link is up, no sync is in progress and it holds `keys` keys."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            f = info_fields(replica, "replication")
            if (f.get("master_link_status") == "up"
                    and f.get("master_sync_in_progress") == "0"
                    and replica.call("DBSIZE") == keys):
                return
        except (RespError, OSError):
            pass
        time.sleep(0.01)
    raise SystemExit(f"{replica.name} did not finish its sync")


def replica_of(name, binary, extra, primary):
    return Server(name, binary, extra + ["--replicaof", f"127.0.0.1 {primary.port}"])


def replication(kiln_bin, kiln_extra, args):
    """Rows of (label, kiln value, redis value, unit) for full sync time, write throughput
    with two replicas, and replication lag under load."""
    flavours = {
        "kiln": (kiln_bin, list(kiln_extra)),
        "redis": ("redis-server", ["--repl-diskless-sync-delay", "0"]),
    }
    sync_secs, rps, lag = {}, {}, {}
    for name, (binary, extra) in flavours.items():
        primary = Server(name, binary, extra)
        start_with_debug(primary)
        replicas = []
        try:
            primary.call("DEBUG", "POPULATE", args.keys)
            t0 = time.time()
            first = replica_of(f"{name}-replica", binary, extra, primary).start()
            replicas.append(first)
            wait_linked(first, args.keys)
            sync_secs[name] = time.time() - t0
            print(f"  full sync of {args.keys} keys, {name}: {sync_secs[name]:.2f} s",
                  flush=True)
            second = replica_of(f"{name}-replica2", binary, extra, primary).start()
            replicas.append(second)
            wait_linked(second, args.keys)
            for pipeline in PIPELINES:
                base = args.requests if pipeline == 1 else args.requests * args.pipelined_factor
                sampled = []
                stop = threading.Event()

                def sample():
                    while not stop.is_set():
                        try:
                            off = int(info_fields(primary, "replication")["master_repl_offset"])
                            for r in replicas:
                                got = int(info_fields(r, "replication")["slave_repl_offset"])
                                sampled.append(max(0, off - got))
                        except (RespError, OSError, KeyError, ValueError):
                            pass
                        stop.wait(0.05)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                r, _cpu = run_benchmark(primary, Bench("SET", test="set"), base, pipeline,
                                        args.clients, args.keyspace)
                stop.set()
                sampler.join()
                rps[(name, pipeline)] = r
                # Catch-up: until both replicas reached the primary's offset.
                t1 = time.time()
                target_off = int(info_fields(primary, "replication")["master_repl_offset"])
                while any(int(info_fields(x, "replication")["slave_repl_offset"]) < target_off
                          for x in replicas):
                    time.sleep(0.005)
                catch_up = time.time() - t1
                if pipeline == PIPELINES[-1]:
                    mean = sum(sampled) / len(sampled) if sampled else 0.0
                    lag[name] = (mean, max(sampled, default=0), catch_up)
                print(f"  SET P{pipeline} with two replicas, {name}: {r:,.0f} req/s",
                      flush=True)
        finally:
            for r in replicas:
                r.stop()
            primary.stop()
    rows = [(f"full sync of {args.keys} keys (s)", sync_secs.get("kiln"),
             sync_secs.get("redis"))]
    for pipeline in PIPELINES:
        rows.append((f"SET P{pipeline}, 2 replicas (req/s)", rps.get(("kiln", pipeline)),
                     rps.get(("redis", pipeline))))
    labels = ("lag under SET P16, mean (bytes)", "lag under SET P16, max (bytes)",
              "catch-up after the load (s)")
    for i, label in enumerate(labels):
        rows.append((label, lag.get("kiln", (None,) * 3)[i], lag.get("redis", (None,) * 3)[i]))
    return rows


# --- memory ----------------------------------------------------------------------------


def push_batched(server, command, key, values, batch=1000):
    """Sends `command key v1 v2 ...` in pipelined batches of `batch` values."""
    c = Conn(server.port)
    try:
        sent = 0
        for lo in range(0, len(values), batch):
            args = [command, key] + list(values[lo:lo + batch])
            out = [b"*%d\r\n" % len(args)]
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
            c.sock.sendall(b"".join(out))
            sent += 1
        for _ in range(sent):
            c._reply()
    finally:
        c.close()


def write_batched_pipe(path, head, items, batch, args_of):
    """A RESP file of `head + args_of(lo, hi)` commands, one per `batch` items."""
    with open(path, "wb") as f:
        for lo in range(0, items, batch):
            args = head + args_of(lo, min(items, lo + batch))
            out = [b"*%d\r\n" % len(args)]
            for a in args:
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
            f.write(b"".join(out))


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


def collection_variants(members):
    """(label, key, cardinality command, pipe writer) of the big-collection memory rows."""

    def hash_pipe(path):
        write_batched_pipe(path, [b"HSET", b"bighash"], members, 1000,
                           lambda lo, hi: [x for i in range(lo, hi)
                                           for x in (b"m:%d" % i, b"v")])

    def set_pipe(path):
        write_batched_pipe(path, [b"SADD", b"bigset"], members, 1000,
                           lambda lo, hi: [b"m:%d" % i for i in range(lo, hi)])

    def zset_pipe(path):
        write_zadd_pipe(path, "bigzset", members, b"m:%d")

    def stream_pipe(path):
        # One XADD per entry (XADD takes one entry), explicit IDs so both servers hold the
        # same data: entry i is "<i+1>-0 f <i>".
        with open(path, "wb") as f:
            for lo in range(0, members, 1000):
                out = []
                for i in range(lo, min(members, lo + 1000)):
                    v = b"%d" % i
                    idv = b"%d-0" % (i + 1)
                    out.append(b"*5\r\n$4\r\nXADD\r\n$9\r\nbigstream\r\n$%d\r\n%s\r\n"
                               b"$1\r\nf\r\n$%d\r\n%s\r\n" % (len(idv), idv, len(v), v))
                f.write(b"".join(out))

    return [
        (f"hash, {members:,} fields m:<n> -> v", "bighash", "HLEN", hash_pipe),
        (f"set, {members:,} members m:<n>", "bigset", "SCARD", set_pipe),
        (f"zset, {members:,} members m:<n>", "bigzset", "ZCARD", zset_pipe),
        (f"stream, {members:,} entries f <n>", "bigstream", "XLEN", stream_pipe),
    ]


def memory_collections(kiln_bin, kiln_extra, args):
    """Rows of (label, kiln used, redis used, kiln rss, redis rss) in bytes per member of
    one big collection; None when that server could not load it (the reason is printed)."""
    tmp = tempfile.mkdtemp(prefix="kiln-bench-pipe-")
    _tempdirs.append(tmp)
    rows = []
    for label, key, card, write in collection_variants(args.members):
        pipe_file = os.path.join(tmp, key + ".resp")
        write(pipe_file)
        cells = {}
        # Fresh servers per collection, for the same reason as in memory().
        for server in (Server("kiln", kiln_bin, kiln_extra), Server("redis", "redis-server")):
            server.start()
            try:
                used0, rss0 = server.memory()
                load_pipe(server, args.members, pipe_file)
                n = server.call(card, key)
                if n != args.members:
                    raise RespError(f"{card} is {n} after loading {args.members} members")
                time.sleep(0.5)
                used1, rss1 = server.memory()
                used = None if used0 is None or used1 is None else (used1 - used0) / n
                cells[server.name] = (used, (rss1 - rss0) / n)
            except (RespError, OSError) as e:
                print(f"  {label}: {server.name} failed: {e}", flush=True)
                cells[server.name] = (None, None)
            finally:
                server.stop()
        os.remove(pipe_file)
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



def throughput_table(title, rows):
    """A table of (label, kiln req/s, redis req/s, kiln CPU us/req, redis CPU us/req)."""
    return table(
        title,
        ["test", "kiln req/s", "redis req/s", "kiln/redis",
         "kiln CPU us/req", "redis CPU us/req", "kiln/redis"],
        [(label, fmt(kr, ",.0f"), fmt(rr, ",.0f"), fmt(ratio(kr, rr), ".2f"),
          fmt(kc, ".2f"), fmt(rc, ".2f"), fmt(ratio(kc, rc), ".2f"))
         for label, kr, rr, kc, rc in rows],
    )


def memory_table(title, first, rows):
    """A table of (label, kiln used, redis used, kiln rss, redis rss) in bytes."""
    return table(
        title,
        [first, "kiln used", "redis used", "kiln/redis", "kiln rss", "redis rss",
         "kiln/redis"],
        [(label, fmt(ku, ".1f"), fmt(ru, ".1f"), fmt(ratio(ku, ru), ".2f"),
          fmt(kr, ".1f"), fmt(rr, ".1f"), fmt(ratio(kr, rr), ".2f"))
         for label, ku, ru, kr, rr in rows],
    )

def release_binary(no_build):
    """Path of target/release/kiln-server, built first unless `no_build`."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    kiln_bin = str(target / "release" / "kiln-server")
    if not no_build:
        print("building kiln-server (release)...", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "kiln-server"], cwd=ROOT,
                       check=True)
    if not os.access(kiln_bin, os.X_OK):
        raise SystemExit(f"{kiln_bin} not found: build it or drop --no-build")
    return kiln_bin


def save_report(name, text):
    """Prints a report and keeps a copy in bench/out/<name>-<time>.txt (ignored by git)."""
    print()
    print(text)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / time.strftime(f"{name}-%Y%m%d-%H%M%S.txt")
    path.write_text(text + "\n")
    print(f"(saved to {path.relative_to(ROOT)})")


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
    p.add_argument("--members", type=int, help="members of the big collections (ZRANK row "
                   "and collection memory table; default 1000000, --quick 100000)")
    p.add_argument("--threads", type=int, default=0,
                   help="kiln-server --threads (default 0: one per core)")
    p.add_argument("--no-build", action="store_true", help="use the existing release binary")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-aof", action="store_true", help="skip the append-only file rows")
    p.add_argument("--aof", action="store_true",
                   help="run only the append-only file rows (SET with appendfsync everysec "
                   "and always)")
    p.add_argument("--skip-scripting", action="store_true", help="skip the scripting rows")
    p.add_argument("--scripting", action="store_true",
                   help="run only the scripting rows (EVALSHA of three scripts, FCALL)")
    p.add_argument("--bits", action="store_true",
                   help="run only the bitmap and HyperLogLog rows")
    p.add_argument("--skip-geo-sort", action="store_true", help="skip the geo and SORT rows")
    p.add_argument("--geo-sort", action="store_true",
                   help="run only the geo and SORT rows (GEOADD, GEOSEARCH, SORT BY GET)")
    p.add_argument("--skip-hot-keys", action="store_true", help="skip the hot-key rows")
    p.add_argument("--hot-keys", action="store_true",
                   help="run only the hot-key rows (INCR and ZADD on one key, a skewed "
                   "GET/SET mix)")
    p.add_argument("--syscalls", action="store_true",
                   help="run only the GET and SET rows (with --hot-keys: and the hot-key "
                   "rows), counting the server's syscalls per request (perf stat, or "
                   "strace -c where the syscall tracepoints are unavailable)")
    p.add_argument("--replication", action="store_true",
                   help="run only the replication rows (full sync time of --keys keys, SET "
                   "throughput with two replicas, replication lag under load)")
    args = p.parse_args()
    if args.aof:
        args.skip_throughput = args.skip_memory = args.skip_scripting = True
        args.skip_aof = False
    if args.scripting:
        args.skip_throughput = args.skip_memory = args.skip_aof = True
        args.skip_scripting = False
    if args.replication:
        args.skip_throughput = args.skip_memory = args.skip_aof = args.skip_scripting = True
    if args.bits:
        args.skip_throughput = args.skip_memory = args.skip_aof = args.skip_scripting = True
    if args.geo_sort:
        args.skip_throughput = args.skip_memory = args.skip_aof = args.skip_scripting = True
        args.skip_geo_sort = False
    elif args.aof or args.scripting or args.replication or args.bits or args.hot_keys \
            or args.syscalls:
        args.skip_geo_sort = True
    if args.hot_keys or args.syscalls:
        args.skip_throughput = args.skip_memory = args.skip_aof = args.skip_scripting = True
    if args.hot_keys:
        args.skip_hot_keys = False
    elif args.aof or args.scripting or args.replication or args.bits or args.geo_sort \
            or args.syscalls:
        args.skip_hot_keys = True
    args.requests = args.requests or (10000 if args.quick else 100000)
    args.reps = args.reps or (1 if args.quick else 2)
    args.keys = args.keys or (100000 if args.quick else 1000000)
    args.members = args.members or (100000 if args.quick else 1000000)

    prepare()

    kiln_bin = release_binary(args.no_build)
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

    if (not args.skip_throughput or not args.skip_scripting or not args.skip_geo_sort
            or not args.skip_hot_keys or args.syscalls):
        kiln = Server("kiln", kiln_bin, kiln_extra).start()
        redis = Server("redis", "redis-server").start()
        try:
            if args.syscalls:
                tool = syscall_tool()
                how = ("perf stat on the syscalls:sys_enter_* tracepoints" if tool == "perf"
                       else "strace -c -f (perf tracepoints unavailable; strace slows the "
                       "server many times over: req/s not comparable)")
                print(f"syscalls per request ({how})...", flush=True)
                counts = []
                rows = run_rows(kiln, redis, build_syscall_tests(args), args, counts)
                if not args.skip_hot_keys:
                    rows += hot_key_throughput(kiln, redis, args, counts)
                report.append(throughput_table(
                    f"Throughput and server CPU time per request, measured under {tool}",
                    rows))
                report.append("")
                report.append(syscall_table(
                    f"Server syscalls per request ({how}; counted: {', '.join(SYSCALLS)})",
                    counts))
                report.append("")
            if not args.skip_throughput:
                print("throughput...", flush=True)
                rows = throughput(kiln, redis, args)
                report.append(throughput_table(
                    "Throughput and server CPU time per request", rows))
                report.append("")
            if not args.skip_scripting:
                print("scripting throughput...", flush=True)
                rows = scripting_throughput(kiln, redis, args)
                report.append(throughput_table(
                    "Scripting: throughput and server CPU time per request (EVALSHA, FCALL)",
                    rows))
                report.append("")
            if not args.skip_geo_sort:
                print("geo and SORT throughput...", flush=True)
                rows = geo_sort_throughput(kiln, redis, args)
                report.append(throughput_table(
                    "Geo and SORT: throughput and server CPU time per request", rows))
                report.append("")
            if not args.skip_hot_keys and not args.syscalls:
                print("hot-key throughput...", flush=True)
                rows = hot_key_throughput(kiln, redis, args)
                report.append(throughput_table(
                    "Hot keys: throughput and server CPU time per request (one key; a "
                    "skewed GET/SET mix from six concurrent redis-benchmarks)", rows))
                report.append("")
        finally:
            kiln.stop()
            redis.stop()

    if args.bits:
        kiln = Server("kiln", kiln_bin, kiln_extra).start()
        redis = Server("redis", "redis-server").start()
        try:
            print("bitmap and HyperLogLog throughput...", flush=True)
            rows = bits_throughput(kiln, redis, args)
            report.append(throughput_table(
                "Bitmaps and HyperLogLog: throughput and server CPU time per request", rows))
            report.append("")
        finally:
            kiln.stop()
            redis.stop()

    if not args.skip_aof:
        print("throughput with the AOF on...", flush=True)
        rows = aof_throughput(kiln_bin, kiln_extra, args)
        report.append(throughput_table(
            "Write throughput with the append-only file on (fresh servers per policy)", rows))
        report.append("")

    if args.replication:
        print("replication...", flush=True)
        rows = replication(kiln_bin, kiln_extra, args)
        report.append(table(
            "Replication: Kiln to Kiln vs Redis to Redis",
            ["measure", "kiln", "redis", "kiln/redis"],
            [(label, fmt(k, ",.2f"), fmt(r, ",.2f"), fmt(ratio(k, r), ".2f"))
             for label, k, r in rows],
        ))
        report.append("")

    if not args.skip_memory:
        print("memory...", flush=True)
        rows = memory(kiln_bin, kiln_extra, args)
        report.append(memory_table(
            "Memory per key (bytes; INFO used_memory and used_memory_rss, after - before)",
            "load", rows))
        report.append("")
        print("memory of big collections...", flush=True)
        rows = memory_collections(kiln_bin, kiln_extra, args)
        report.append(memory_table(
            "Memory per member of one big collection (bytes; INFO used_memory and "
            "used_memory_rss, after - before)",
            "collection", rows))
        report.append("")

    save_report("compare", "\n".join(report))


if __name__ == "__main__":
    main()
