//! Stress over the command model: random sequences drawn from the whole command table, on
//! several connections at once, with the awkward things clients do (transactions, WATCH,
//! blocking with short timeouts, CLIENT KILL and CLIENT UNBLOCK of each other, closing in the
//! middle of a request or while blocked, protocol garbage, pub/sub), under a watchdog.
//!
//! * `random_clients_on_every_command_get_answers_and_the_server_survives`: 8 connections on
//!   a 4-thread server for `KILN_STRESS_SECS` seconds (default 45). Every request must get an
//!   answer unless its connection was deliberately closed (QUIT, a kill by another stress
//!   connection, protocol garbage); at the end the server still runs, answers PING on a fresh
//!   connection, holds no blocked or leftover clients, and exits cleanly on SHUTDOWN.
//! * `deterministic_sequences_reply_like_redis`: single-connection sequences from the same
//!   table, limited to commands whose replies do not depend on chance or time, run against
//!   Kiln and redis-server and compared byte for byte; a divergence prints the sequence that
//!   led to it, as a script for `tests/diff` or redis-cli.
//!
//! Invocations come from `support/examples.rs` (one per command) and [`EXTRA`] below: key
//! arguments (found with `COMMAND GETKEYS`) are redrawn from a small pool so commands collide,
//! often on a key of the wrong type; numbers, members, values and stream ids are redrawn; one
//! in ten is made invalid (an argument dropped, added or replaced by garbage).
//!
//! Reproduce with `KILN_STRESS_SEED=<seed printed by the run>`; the compared part then
//! replays exactly, the concurrent part draws the same choices per connection (their
//! interleaving is up to the scheduler). `KILN_STRESS_SYNC=1` checks after every step of the
//! concurrent part that no reply is left over (pinning an extra or missing reply on the step
//! that caused it). A failure prints the end of the server's log (`KILN_TEST_STDERR=1` shows
//! all of it as it runs). A longer local run (the
//! compared part grows with it, 16 sequences per 45 s):
//! `KILN_STRESS_SECS=600 cargo test -p kiln-server --test stress -- --nocapture`.

mod support;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_resp::Value;
use support::examples::{command_list, connect, words, EXAMPLES, FIXTURE};
use support::{Raw, TestServer, DEBUG_ON};

const SEED_ENV: &str = "KILN_STRESS_SEED";
const SECS_ENV: &str = "KILN_STRESS_SECS";
/// Set to check after every step that the connection has no reply left over (at the cost of
/// a RESET between steps): pins an extra or missing reply on the step that caused it.
const SYNC_ENV: &str = "KILN_STRESS_SYNC";
/// Connections of the concurrent part, each on its own thread.
const CONNS: usize = 8;
/// No reply may take longer than this.
const REPLY_LIMIT: Duration = Duration::from_secs(60);

/// More invocations, with options the one-per-command examples leave out. Same notation as
/// `EXAMPLES` (`~` reply differs run to run, `!` absent from Redis 7.0), plus `?`: changes
/// the dataset in a way that depends on chance or time (short TTLs, ids from the clock), so
/// only the concurrent part runs it. `""` stands for an empty argument.
const EXTRA: &[&str] = &[
    "set s v EX 100",
    "?set s v PX 3",
    "set s v NX GET",
    "set s 12 KEEPTTL XX",
    "getex s EX 100",
    "?pexpire s 2",
    "?psetex s2 2 v",
    "incrbyfloat s -2.5",
    "setrange s 3 abc",
    "getrange s -3 -1",
    "mget s s2 s3",
    "msetnx s 1 s2 2",
    "append s2 xyz",
    "lcs s s2 LEN",
    "getdel s",
    "lpush l a b c d e",
    "rpush l2 1 2 3",
    "linsert l AFTER a x",
    "lpos l a RANK -1 COUNT 2",
    "lrange l -2 -1",
    "lmpop 2 l l2 RIGHT COUNT 2",
    "blpop l l2 0",
    "brpop l l2 0",
    "blmove l2 l RIGHT LEFT 0",
    "blmpop 0 2 l l2 RIGHT COUNT 2",
    "hset h f1 1 f2 x f3 -3",
    "hincrbyfloat h f2 2.5",
    "hdel h f1 f2",
    "hmget h f1 f3 f9",
    "sadd st 1 2 3",
    "sadd st a b",
    "~sinter st st2",
    "sintercard 2 st st2 LIMIT 1",
    "smismember st 1 a",
    "sunionstore st3 st st2",
    "sdiffstore st2 st st3",
    "zadd z GT CH 5 a 1 x",
    "zadd z NX INCR 2 b",
    "zincrby z -1 b",
    "zrange z 0 -1 WITHSCORES",
    "zrange z (1 +inf BYSCORE LIMIT 0 2",
    "zrange z (c [a BYLEX REV",
    "zrangebyscore z -inf +inf WITHSCORES LIMIT 1 2",
    "zunionstore z3 2 z z2 WEIGHTS 2 1 AGGREGATE MAX",
    "zinterstore z3 2 z z2",
    "zdiff 2 z z2 WITHSCORES",
    "zmpop 2 z z2 MAX COUNT 2",
    "bzpopmin z z2 0",
    "bzpopmax z2 0",
    "bzmpop 0 2 z z2 MIN COUNT 2",
    "zremrangebyscore z (2 5",
    "~zrandmember z -3 WITHSCORES",
    "?xadd x * f v",
    "?xadd x MAXLEN ~ 3 * f v",
    "xadd x NOMKSTREAM 9-1 f v",
    "xgroup create x g $ MKSTREAM",
    "xgroup create x g2 0",
    "xread COUNT 2 STREAMS x x2 0 0",
    "xread COUNT 2 BLOCK 0 STREAMS x $",
    "xreadgroup GROUP g c COUNT 1 BLOCK 0 STREAMS x >",
    "xreadgroup GROUP g c2 NOACK STREAMS x >",
    "xack x g 1-1 2-1",
    "~xpending x g - + 10",
    "~xpending x g IDLE 0 - + 10 c",
    "~xclaim x g c 0 1-1 2-1 JUSTID",
    "~xautoclaim x g c 0 0-0 COUNT 2",
    "xtrim x MINID 2",
    "xdel x 2-1 3-1",
    "xrange x - + COUNT 2",
    "xrevrange x + - COUNT 1",
    "copy s s2 REPLACE",
    "rename l l2",
    "renamenx z z2",
    "object encoding z",
    "object encoding h",
    "object encoding s",
    "type z",
    "exists a b k",
    "del a b k",
    "touch s l h",
    "incr s2",
    "select 2",
    "debug sleep 0",
    "~hello 3",
    "wait 1 5",
    "config set notify-keyspace-events KEA",
    "config set notify-keyspace-events \"\"",
    "debug set-active-expire 1",
    "publish c:any m",
    "spublish c:any m",
    "client unblock 987654 ERROR",
];

/// Commands the concurrent part never sends: they would end the server or change its role,
/// or turn the connection into a replication link. SUBSCRIBE and friends change what a
/// connection receives; they run in their own step ([`Worker::pubsub`]). MONITOR turns the
/// connection into a listener that may not touch the keyspace.
const NEVER: &[&str] = &[
    "shutdown",
    "replicaof",
    "slaveof",
    "failover",
    "psync",
    "sync",
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "monitor",
];

/// Commands left out of the comparison with Redis, besides `~ ! ?` invocations: replies
/// that depend on time (TTLs left, INFO), background work whose overlap with the next
/// command depends on timing, and QUIT.
const NOT_COMPARED: &[&str] = &[
    "ttl",
    "pttl",
    "expiretime",
    "pexpiretime",
    "info",
    "bgsave",
    "bgrewriteaof",
    "quit",
];

/// Commands whose array replies come in hash-table order (KEYS walks the keyspace, whose
/// order is each server's own): compared after sorting the elements.
const UNORDERED: &[&str] = &["keys"];

/// Heavy or dataset-wide commands, drawn ten times less often than the others.
const RARE: &[&str] = &[
    "flushall",
    "flushdb",
    "debug",
    "save",
    "bgsave",
    "bgrewriteaof",
    "swapdb",
    "config|set",
    "config|rewrite",
    "config|resetstat",
];

/// Commands whose numbers are not redrawn (protocol versions, replica counts, client ids,
/// durations) or whose arguments are never made invalid (DEBUG SLEEP, WAIT: garbage could
/// turn into a long sleep; CONFIG: a `*` turns CONFIG GET into a listing of every
/// parameter, port and dir included, in the order of Redis's hash table).
const KEEP_NUMBERS: &[&str] = &[
    "hello", "wait", "debug", "config", "client", "command", "replconf", "acl",
];
const KEEP_VALID: &[&str] = &["debug", "wait", "config", "acl"];

/// Commands with durations (relative TTLs, idle times, MIGRATE's timeout) among their
/// numbers: redrawn, they could make the outcome depend on how fast the comparison runs (a
/// key expiring or an entry becoming claimable in between, a 1 ms MIGRATE timing out before
/// its refused connection is reported).
const DURATIONS: &[&str] = &[
    "expire",
    "pexpire",
    "setex",
    "psetex",
    "set",
    "getex",
    "restore",
    "restore-asking",
    "migrate",
    "xclaim",
    "xautoclaim",
    "xpending",
];

/// Commands that take more arguments than in Redis 7.0 (7.2's ZRANK WITHSCORE): never made
/// invalid in the comparison, where an extra argument would diverge by design.
const EXTENDED: &[&str] = &["zrank", "zrevrank"];

/// The key pool, by type; a key argument is redrawn from its own type's family most of the
/// time, from the whole pool otherwise.
const FAMILIES: &[&[&str]] = &[
    &["s", "s2", "s3"],
    &["l", "l2", "l3"],
    &["h", "h2"],
    &["st", "st2", "st3"],
    &["z", "z2", "z3"],
    &["x", "x2"],
    &["k", "a", "b", "other"],
];

/// Example arguments that are members or values, redrawn from [`VALUES`].
const VALUE_WORDS: &[&str] = &["a", "b", "c", "d", "e", "q", "x", "y", "v", "m", "hi"];

const VALUES: &[&[u8]] = &[
    b"v",
    b"1",
    b"-2",
    b"10",
    b"3.5",
    b"",
    b"a",
    b"b",
    b"c",
    b"hello world",
    b"x",
    b"0",
    b"9223372036854775807",
    b"\x00bin\xff",
];

/// What replaces an argument to make an invocation invalid. Nothing here reads as a zero or
/// a tiny timeout (which would block forever).
const GARBAGE: &[&[u8]] = &[
    b"",
    b"-1",
    b"abc",
    b"1e400",
    b"nan",
    b"inf",
    b"-inf",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"0x10",
    b" 1",
    b"1.5",
    b"(",
    b"[",
    b"-",
    b"+",
    b"99999999999999999999",
    b"*",
    b"LIMIT",
    b"COUNT",
    b"WITHSCORES",
];

/// Requests that break the protocol: the server answers with an error and closes.
const PROTOCOL_GARBAGE: &[&[u8]] = &[
    b"*abc\r\n",
    b"*3\r\n$3\r\nSET\r\n$x\r\n",
    b"*1\r\n$-7\r\n",
    b"set \"unbalanced\r\n",
    b"*99999999999\r\n",
    b"*2\r\n$4\r\nPING\r\n:1\r\n",
];

/// SplitMix64: small, and the same sequence on every platform and version.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `num` times in `den`.
    fn odds(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One invocation to draw from, with what may be redrawn in it.
struct Template {
    argv: Vec<Vec<u8>>,
    /// As COMMAND LIST spells it (`config|set`).
    name: String,
    /// Positions of key arguments.
    keys: Vec<usize>,
    /// Position of a blocking timeout (seconds, or milliseconds after XREAD's BLOCK).
    timeout: Option<(usize, bool)>,
    /// Runs in the comparison with Redis.
    compared: bool,
    /// Runs in the concurrent part.
    stressed: bool,
}

impl Template {
    fn top(&self) -> &str {
        self.name.split('|').next().unwrap()
    }

    /// First argument after the command name (and subcommand).
    fn first_arg(&self) -> usize {
        if self.name.contains('|') {
            2
        } else {
            1
        }
    }

    fn is(&self, names: &[&str]) -> bool {
        names.contains(&self.top()) || names.contains(&self.name.as_str())
    }
}

/// Builds the templates from the shared examples and [`EXTRA`], asking the server for the
/// key positions of each.
fn templates(port: u16) -> Vec<Template> {
    let names = command_list(port);
    let mut admin = connect(port);
    let mut out = Vec::new();
    for line in EXAMPLES.iter().chain(EXTRA) {
        let marks: &[char] = &['~', '!', '?'];
        let plain = line.trim_start_matches(marks);
        let argv: Vec<Vec<u8>> = words(plain)
            .into_iter()
            .map(|w| if w == b"\"\"" { Vec::new() } else { w })
            .collect();
        let first = String::from_utf8_lossy(&argv[0]).to_lowercase();
        let name = match argv.get(1) {
            Some(sub)
                if names.contains(&format!(
                    "{first}|{}",
                    String::from_utf8_lossy(sub).to_lowercase()
                )) =>
            {
                format!("{first}|{}", String::from_utf8_lossy(sub).to_lowercase())
            }
            _ => first,
        };
        let mut getkeys: Vec<&[u8]> = vec![b"command", b"getkeys"];
        getkeys.extend(argv.iter().map(|a| &a[..]));
        admin.send_cmd(&getkeys);
        let keys: HashSet<Vec<u8>> = match kiln_resp::decode(&admin.read_reply().unwrap()) {
            Ok((Value::Array(items), _)) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Bulk(b) => Some(b),
                    _ => None,
                })
                .collect(),
            _ => HashSet::new(),
        };
        let mut t = Template {
            argv,
            name,
            keys: Vec::new(),
            timeout: None,
            compared: !line.starts_with(marks),
            stressed: true,
        };
        let first = t.first_arg();
        t.keys = (first..t.argv.len())
            .filter(|&i| keys.contains(&t.argv[i]))
            .collect();
        let last = t.argv.len() - 1;
        t.timeout = match t.top() {
            "blpop" | "brpop" | "bzpopmin" | "bzpopmax" | "brpoplpush" | "blmove" => {
                Some((last, false))
            }
            "blmpop" | "bzmpop" => Some((1, false)),
            "xread" | "xreadgroup" => t
                .argv
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"block"))
                .map(|i| (i + 1, true)),
            _ => None,
        };
        t.stressed = !t.is(NEVER);
        t.compared &=
            t.stressed && !t.is(NOT_COMPARED) && !plain.starts_with("config set appendonly");
        out.push(t);
    }
    out
}

fn is_int(a: &[u8]) -> bool {
    std::str::from_utf8(a).is_ok_and(|s| s.parse::<i64>().is_ok())
}

fn is_stream_id(a: &[u8]) -> bool {
    let s = String::from_utf8_lossy(a);
    s.split_once('-').is_some_and(|(ms, seq)| {
        !ms.is_empty()
            && !seq.is_empty()
            && (ms.bytes().chain(seq.bytes())).all(|b| b.is_ascii_digit())
    })
}

fn family_of(key: &[u8]) -> usize {
    let k = key.strip_prefix(b"no").unwrap_or(key);
    match k {
        [b's', b't', ..] => 3,
        [b's', ..] => 0,
        [b'l', ..] => 1,
        [b'h', ..] => 2,
        [b'z', ..] => 4,
        [b'x', ..] => 5,
        _ => 6,
    }
}

/// Draws a template: every one alike, the [`RARE`] ones ten times less often.
fn draw<'a>(ts: &'a [Template], rng: &mut Rng, compared: bool) -> &'a Template {
    loop {
        let t = rng.pick(ts);
        if !(if compared { t.compared } else { t.stressed }) {
            continue;
        }
        if t.is(RARE) && !rng.odds(1, 10) {
            continue;
        }
        return t;
    }
}

/// An invocation of `t` with its keys, numbers and values redrawn, made invalid one time in
/// ten. `compared`: keep it deterministic (short timeouts fixed, TTLs left alone).
fn generate(t: &Template, rng: &mut Rng, compared: bool) -> Vec<Vec<u8>> {
    let mut argv = t.argv.clone();
    let first = t.first_arg();
    for i in first..argv.len() {
        if t.keys.contains(&i) {
            let fam = if rng.odds(4, 5) {
                FAMILIES[family_of(&argv[i])]
            } else {
                *rng.pick(FAMILIES)
            };
            argv[i] = rng.pick(fam).as_bytes().to_vec();
        } else if let Some((_, ms)) = t.timeout.filter(|&(at, _)| at == i) {
            let pick: &[&str] = match (compared, ms) {
                (true, false) => &["0.01"],
                (true, true) => &["10"],
                (false, false) => &["0.01", "0.02", "0.05", "0.1"],
                (false, true) => &["1", "10", "50", "100"],
            };
            argv[i] = rng.pick(pick).as_bytes().to_vec();
        } else if t.is(KEEP_NUMBERS) {
            continue;
        } else if is_int(&argv[i]) {
            if !(compared && t.is(DURATIONS)) && rng.odds(2, 5) {
                argv[i] = (rng.below(14) as i64 - 3).to_string().into_bytes();
            }
        } else if is_stream_id(&argv[i]) {
            if rng.odds(1, 2) {
                argv[i] = format!("{}-{}", 1 + rng.below(12), rng.below(3)).into_bytes();
            }
        } else if VALUE_WORDS.contains(&String::from_utf8_lossy(&argv[i]).as_ref())
            && rng.odds(1, 2)
        {
            argv[i] = if !compared && rng.odds(1, 20) {
                vec![b'w'; 100]
            } else {
                rng.pick(VALUES).to_vec()
            };
        }
    }
    let keep_valid = t.is(KEEP_VALID) || (compared && t.is(EXTENDED));
    if !keep_valid && rng.odds(1, 10) {
        let garbage = rng.pick(GARBAGE).to_vec();
        match rng.below(4) {
            0 if argv.len() > 1 => {
                argv.pop();
            }
            1 => argv.push(garbage),
            2 if argv.len() > first => {
                let i = first + rng.below(argv.len() - first);
                argv[i] = garbage;
            }
            _ => argv.truncate(first),
        }
    }
    argv
}

/// An argument as a script line writes it (quoted with escapes when needed).
fn show_arg(a: &[u8]) -> String {
    let plain = !a.is_empty()
        && a.iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
    if plain {
        return String::from_utf8_lossy(a).into_owned();
    }
    let mut s = String::from("\"");
    for &b in a {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            b' ' => s.push(' '),
            _ if b.is_ascii_graphic() => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

fn show(argv: &[Vec<u8>]) -> String {
    argv.iter()
        .map(|a| show_arg(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn seed_and_secs() -> (u64, u64) {
    // One seed for both tests of a run.
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::env::var(SEED_ENV)
            .ok()
            .map(|s| s.trim().parse().expect("KILN_STRESS_SEED: a u64"))
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
    });
    let secs = std::env::var(SECS_ENV)
        .ok()
        .map(|s| s.trim().parse().expect("KILN_STRESS_SECS: seconds"))
        .unwrap_or(45);
    (seed, secs)
}

/// Fails the whole test process with a clear message if `limit` passes before it is
/// dropped: kills the servers (so nothing is left running) and prints each connection's
/// last commands.
struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(what: String, limit: Duration, pids: Vec<u32>, recent: Arc<Recent>) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "WATCHDOG: {what} did not finish within {limit:?}: a hang.\n{}",
                    recent.dump()
                );
                for pid in pids {
                    let _ = std::process::Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status();
                }
                std::process::exit(1);
            }
        });
        Self {
            done: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The last commands of each connection, for failure messages.
struct Recent(Vec<Mutex<VecDeque<String>>>);

impl Recent {
    fn new(n: usize) -> Self {
        Self((0..n).map(|_| Mutex::new(VecDeque::new())).collect())
    }

    fn push(&self, who: usize, line: String) {
        let mut q = self.0[who].lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == 12 {
            q.pop_front();
        }
        q.push_back(line);
    }

    fn of(&self, who: usize) -> String {
        let q = self.0[who].lock().unwrap_or_else(|e| e.into_inner());
        q.iter().map(|l| format!("    {l}\n")).collect()
    }

    fn dump(&self) -> String {
        (0..self.0.len())
            .map(|i| format!("  connection {i}, last commands:\n{}", self.of(i)))
            .collect()
    }
}

/// What the stress connections share.
struct Shared {
    seed: u64,
    port: u16,
    /// Each worker's current connection id.
    ids: Vec<AtomicU64>,
    /// Connection ids another worker killed (or is about to).
    killed: Mutex<HashSet<u64>>,
    recent: Arc<Recent>,
    templates: Vec<Template>,
}

/// The server closed the connection.
struct Closed;

type Step = Result<(), Closed>;

struct Worker {
    me: usize,
    sh: Arc<Shared>,
    rng: Rng,
    conn: Raw,
    id: u64,
    /// A command that closes the connection (QUIT, protocol garbage) was sent.
    may_close: bool,
    /// Side connections for steps that block one connection and act from another; never
    /// in `Shared::ids`, so nobody else kills or unblocks them.
    ctl: Raw,
    counts: BTreeMap<String, u64>,
    serial: u64,
}

fn watched(port: u16) -> Raw {
    let c = connect(port);
    c.stream.set_write_timeout(Some(REPLY_LIMIT)).unwrap();
    c
}

impl Worker {
    fn new(me: usize, sh: Arc<Shared>) -> Self {
        let port = sh.port;
        let rng = Rng::new(sh.seed ^ (me as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        let mut w = Self {
            me,
            sh,
            rng,
            conn: watched(port),
            id: 0,
            may_close: false,
            ctl: watched(port),
            counts: BTreeMap::new(),
            serial: 0,
        };
        w.register();
        w
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {} ({SEED_ENV}), connection {} (id {}): {what}\n  last commands:\n{}",
            self.sh.seed,
            self.me,
            self.id,
            self.sh.recent.of(self.me)
        )
    }

    fn note(&self, line: String) {
        self.sh.recent.push(self.me, line);
    }

    /// Asks the fresh connection its id and publishes it to the others.
    fn register(&mut self) {
        self.conn.send_cmd(&["client", "id"]);
        let reply = self.conn.read_reply().expect("client id");
        let id = String::from_utf8_lossy(&reply[1..reply.len() - 2])
            .parse()
            .unwrap();
        self.id = id;
        self.sh.ids[self.me].store(id, Relaxed);
    }

    fn reconnect(&mut self) {
        self.conn = watched(self.sh.port);
        self.may_close = false;
        self.register();
    }

    fn send_bytes(&mut self, bytes: &[u8]) -> Step {
        self.conn.stream.write_all(bytes).map_err(|_| Closed)
    }

    fn send(&mut self, argv: &[Vec<u8>]) -> Step {
        self.note(show(argv));
        let name = argv[0].to_ascii_lowercase();
        *self
            .counts
            .entry(String::from_utf8_lossy(&name).into_owned())
            .or_default() += 1;
        if argv.len() > 1 {
            let full = format!(
                "{}|{}",
                String::from_utf8_lossy(&name),
                String::from_utf8_lossy(&argv[1]).to_lowercase()
            );
            *self.counts.entry(full).or_default() += 1;
        }
        if name == b"quit" {
            self.may_close = true;
        }
        let mut out = Vec::new();
        kiln_resp::encode::request(&mut out, argv);
        self.send_bytes(&out)
    }

    fn recv(&mut self) -> Result<Vec<u8>, Closed> {
        match self.conn.try_read_reply() {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(Closed),
            Err(e) => self.fail(&format!("no reply within {REPLY_LIMIT:?} ({e})")),
        }
    }

    fn call(&mut self, argv: &[Vec<u8>]) -> Result<Vec<u8>, Closed> {
        self.send(argv)?;
        self.recv()
    }

    /// Runs a generated invocation, filling in a DUMP payload where it takes one.
    fn run(&mut self, mut argv: Vec<Vec<u8>>) -> Step {
        if let Some(i) = argv.iter().position(|a| a == b"$DUMP") {
            let fam = self.rng_family();
            let key = self.rng.pick(fam).as_bytes().to_vec();
            let reply = self.call(&[b"dump".to_vec(), key])?;
            argv[i] = dump_payload(&reply);
        }
        self.call(&argv)?;
        if argv[0].eq_ignore_ascii_case(b"quit") {
            // Whatever the reply, the connection is over.
            self.reconnect();
        }
        Ok(())
    }

    fn rng_family(&mut self) -> &'static [&'static str] {
        FAMILIES[self.rng.below(FAMILIES.len())]
    }

    fn random_command(&mut self) -> Vec<Vec<u8>> {
        let sh = self.sh.clone();
        let t = draw(&sh.templates, &mut self.rng, false);
        generate(t, &mut self.rng, false)
    }

    fn other_id(&mut self) -> u64 {
        let mut j = self.rng.below(CONNS);
        if j == self.me {
            j = (j + 1) % CONNS;
        }
        self.sh.ids[j].load(Relaxed)
    }

    /// One random step.
    fn step(&mut self) -> Step {
        match self.rng.below(100) {
            0..=69 => {
                let argv = self.random_command();
                self.run(argv)
            }
            70..=79 => self.transaction(),
            80..=82 => {
                let victim = self.other_id();
                self.sh.killed.lock().unwrap().insert(victim);
                self.call(&words(&format!("client kill ID {victim}")))
                    .map(drop)
            }
            83..=85 => {
                let other = self.other_id();
                let how = *self.rng.pick(&["", " TIMEOUT", " ERROR"]);
                self.call(&words(&format!("client unblock {other}{how}")))
                    .map(drop)
            }
            86 => {
                // Half a request, then gone.
                let argv = self.random_command();
                let mut out = Vec::new();
                kiln_resp::encode::request(&mut out, &argv);
                self.note(format!("(half of) {}", show(&argv)));
                let _ = self.send_bytes(&out[..out.len() / 2]);
                self.reconnect();
                Ok(())
            }
            87 | 88 => {
                self.side_block();
                Ok(())
            }
            89 | 90 => self.pubsub(),
            91..=93 => self.pipeline(),
            94 => {
                self.garbage();
                Ok(())
            }
            95 => self.call(&words("reset")).map(drop),
            _ => self.inline(),
        }
    }

    /// RESET, whose reply must be the next one (see [`SYNC_ENV`]).
    fn sync(&mut self) -> Step {
        let reply = self.call(&words("reset"))?;
        if reply != b"+RESET\r\n" {
            self.fail(&format!(
                "a reply left over from the last step: {:?}",
                String::from_utf8_lossy(&reply)
            ));
        }
        Ok(())
    }

    /// WATCH (sometimes), MULTI, a few commands, EXEC (or DISCARD).
    fn transaction(&mut self) -> Step {
        if self.rng.odds(1, 2) {
            let mut watch = vec![b"watch".to_vec()];
            for _ in 0..1 + self.rng.below(3) {
                let fam = self.rng_family();
                watch.push(self.rng.pick(fam).as_bytes().to_vec());
            }
            self.call(&watch)?;
            let argv = self.random_command();
            self.run(argv)?;
        }
        self.call(&words("multi"))?;
        for _ in 0..1 + self.rng.below(5) {
            let argv = self.random_command();
            self.run(argv)?;
        }
        let end = if self.rng.odds(1, 8) {
            "discard"
        } else {
            "exec"
        };
        self.call(&words(end)).map(drop)
    }

    /// Commands sent in one write, their replies read after.
    fn pipeline(&mut self) -> Step {
        let n = 2 + self.rng.below(19);
        let mut cmds = Vec::new();
        while cmds.len() < n {
            let argv = self.random_command();
            if !argv[0].eq_ignore_ascii_case(b"quit") && !argv.iter().any(|a| a == b"$DUMP") {
                cmds.push(argv);
            }
        }
        let mut out = Vec::new();
        for argv in &cmds {
            self.note(format!("(pipelined) {}", show(argv)));
            kiln_resp::encode::request(&mut out, argv);
        }
        self.send_bytes(&out)?;
        for _ in 0..n {
            self.recv()?;
        }
        Ok(())
    }

    /// A command written inline (space separated), when its arguments allow it.
    fn inline(&mut self) -> Step {
        let argv = self.random_command();
        let simple = argv.iter().all(|a| {
            !a.is_empty()
                && a.iter()
                    .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\'')
        });
        if !simple || argv[0].eq_ignore_ascii_case(b"quit") || argv.iter().any(|a| a == b"$DUMP") {
            return self.run(argv);
        }
        self.note(format!("(inline) {}", show(&argv)));
        let mut line = argv.join(&b' ');
        line.extend_from_slice(b"\r\n");
        self.send_bytes(&line)?;
        self.recv().map(drop)
    }

    /// Protocol errors: the server answers with an error and closes the connection.
    fn garbage(&mut self) {
        let bytes = *self.rng.pick(PROTOCOL_GARBAGE);
        self.note(format!(
            "(protocol garbage) {:?}",
            String::from_utf8_lossy(bytes)
        ));
        self.may_close = true;
        if self.send_bytes(bytes).is_ok() {
            let _ = self.recv();
        }
        self.reconnect();
    }

    /// RESET, then subscriptions, a PING, maybe an unsubscribe, then RESET back: published
    /// messages (and keyspace events) may arrive between any two replies.
    fn pubsub(&mut self) -> Step {
        let reset = |v: &Value| matches!(v, Value::Simple(s) if s == b"RESET");
        self.expect_after_pushes(&words("reset"), reset)?;
        let me = format!("c:{}", self.me);
        for line in [
            format!("subscribe c:any {me}"),
            "psubscribe p:* __key*".to_string(),
            "ssubscribe c:any".to_string(),
        ] {
            let argv = words(&line);
            let kind = String::from_utf8_lossy(&argv[0]).to_lowercase();
            self.send(&argv)?;
            for _ in 1..argv.len() {
                self.read_past_pushes(&argv, |v| is_push_of(v, &kind))?;
            }
        }
        let marker = format!("m{}", self.serial);
        self.serial += 1;
        let pong = Value::Bulk(marker.clone().into_bytes());
        self.expect_after_pushes(
            &words(&format!("ping {marker}")),
            |v| matches!(v, Value::Array(a) if a.get(1) == Some(&pong)),
        )?;
        if self.rng.odds(1, 2) {
            self.expect_after_pushes(&words("unsubscribe c:any"), |v| {
                is_push_of(v, "unsubscribe")
            })?;
        }
        self.expect_after_pushes(&words("reset"), reset)
    }

    /// Sends `argv`, then reads replies until one satisfies `done`, skipping pub/sub
    /// messages; any other reply fails the test.
    fn expect_after_pushes(&mut self, argv: &[Vec<u8>], done: impl Fn(&Value) -> bool) -> Step {
        self.send(argv)?;
        self.read_past_pushes(argv, done)
    }

    fn read_past_pushes(&mut self, argv: &[Vec<u8>], done: impl Fn(&Value) -> bool) -> Step {
        loop {
            let reply = self.recv()?;
            let (v, _) = kiln_resp::decode(&reply).unwrap();
            if done(&v) {
                return Ok(());
            }
            if !is_message(&v) {
                self.fail(&format!(
                    "unexpected reply to `{}` in pub/sub mode: {:?}",
                    show(argv),
                    String::from_utf8_lossy(&reply)
                ));
            }
        }
    }

    /// The side connection's next reply (None: closed), failing clearly on a timeout.
    fn side_reply(&self, side: &mut Raw, form: &str) -> Option<Vec<u8>> {
        side.try_read_reply().unwrap_or_else(|e| {
            // What the server thinks of the clients, to tell a lost wake-up from a stall.
            let mut look = connect(self.sh.port);
            let clients = look.cmd(&["client", "list"]);
            let blocked = look.cmd(&["info", "clients"]);
            self.fail(&format!(
                "the side connection blocked on `{form}` got no reply within {REPLY_LIMIT:?} \
                 ({e})\nCLIENT LIST:\n{clients}\nINFO clients:\n{blocked}"
            ))
        })
    }

    /// A side connection blocks forever on a key nobody else uses; once CLIENT LIST shows it
    /// blocked, it is unblocked (CLIENT UNBLOCK), served (a push), killed, or just closed.
    fn side_block(&mut self) {
        let port = self.sh.port;
        let mut side = watched(port);
        side.send_cmd(&["client", "id"]);
        let reply = side.read_reply().expect("client id");
        let sid = String::from_utf8_lossy(&reply[1..reply.len() - 2]).into_owned();
        let key = format!("blk:{}:{}", self.me, self.serial);
        self.serial += 1;
        let forms: &[&str] = &[
            "blpop {k} 0",
            "brpoplpush {k} {k}:dst 0",
            "blmove {k} {k}:dst LEFT RIGHT 0",
            "blmpop 0 1 {k} LEFT",
            "bzpopmin {k} 0",
            "bzmpop 0 1 {k} MAX",
            "xread BLOCK 0 STREAMS {k} $",
        ];
        let form = self.rng.pick(forms).replace("{k}", &key);
        self.note(format!("(side {sid}) {form}"));
        side.send_cmd(&words(&form));
        let started = Instant::now();
        loop {
            self.ctl.send_cmd(&["client", "list", "id", &sid]);
            let list =
                String::from_utf8_lossy(&self.ctl.read_reply().expect("client list")).into_owned();
            let blocked = list
                .split(' ')
                .any(|f| f.strip_prefix("flags=").is_some_and(|f| f.contains('b')));
            if blocked {
                break;
            }
            if started.elapsed() > REPLY_LIMIT {
                self.fail(&format!(
                    "side connection never showed as blocked on `{form}`: {list}"
                ));
            }
        }
        let kind = form.split(' ').next().unwrap();
        match self.rng.below(4) {
            0 => {
                let how = *self.rng.pick(&["TIMEOUT", "ERROR"]);
                self.note(format!("(ctl) client unblock {sid} {how}"));
                let r = self.ctl.cmd(&["client", "unblock", &sid, how]);
                if r != ":1\r\n" {
                    self.fail(&format!("CLIENT UNBLOCK of a blocked `{form}`: {r:?}"));
                }
                let got = String::from_utf8_lossy(
                    &self.side_reply(&mut side, &form).unwrap_or_else(|| {
                        self.fail(&format!(
                            "side connection closed after CLIENT UNBLOCK of `{form}`"
                        ))
                    }),
                )
                .into_owned();
                let want = if how == "ERROR" {
                    "-UNBLOCKED"
                } else {
                    "*-1\r\n"
                };
                if !got.starts_with(want) {
                    self.fail(&format!("`{form}` unblocked with {how} replied {got:?}"));
                }
                assert_eq!(side.cmd(&["ping"]), "+PONG\r\n");
            }
            1 if kind != "xread" => {
                let push = match kind {
                    "bzpopmin" | "bzmpop" => format!("zadd {key} 1 m"),
                    _ => format!("rpush {key} m"),
                };
                self.note(format!("(ctl) {push}"));
                self.ctl.cmd(&words(&push));
                let got = self.side_reply(&mut side, &form).unwrap_or_else(|| {
                    self.fail(&format!(
                        "side connection closed instead of serving `{form}`"
                    ))
                });
                if got.starts_with(b"-") || got == b"*-1\r\n" {
                    self.fail(&format!(
                        "`{form}` after `{push}`: {:?}",
                        String::from_utf8_lossy(&got)
                    ));
                }
                self.ctl.cmd(&["del", &key, &format!("{key}:dst")]);
            }
            2 => {
                self.note(format!("(ctl) client kill ID {sid}"));
                self.ctl.cmd(&["client", "kill", "ID", &sid]);
                if self.side_reply(&mut side, &form).is_some() {
                    self.fail(&format!(
                        "killed while blocked on `{form}`, yet a reply came"
                    ));
                }
            }
            _ => self.note(format!("(side {sid}) closed while blocked")),
        }
    }
}

/// Whether a reply is a pub/sub message (not a reply to a command).
fn is_message(v: &Value) -> bool {
    match v {
        Value::Array(items) | Value::Push(items) => matches!(
            items.first(),
            Some(Value::Bulk(k)) if [&b"message"[..], b"pmessage", b"smessage"].contains(&&k[..])
        ),
        _ => false,
    }
}

/// Whether a reply is a (un)subscribe confirmation of `kind`.
fn is_push_of(v: &Value, kind: &str) -> bool {
    match v {
        Value::Array(items) | Value::Push(items) => {
            matches!(items.first(), Some(Value::Bulk(k)) if k.eq_ignore_ascii_case(kind.as_bytes()))
        }
        _ => false,
    }
}

/// The payload of a DUMP reply, or garbage for a nil.
fn dump_payload(reply: &[u8]) -> Vec<u8> {
    match kiln_resp::decode(reply) {
        Ok((Value::Bulk(b), _)) => b,
        _ => b"not a payload".to_vec(),
    }
}

#[test]
fn random_clients_on_every_command_get_answers_and_the_server_survives() {
    let (seed, secs) = seed_and_secs();
    eprintln!("stress: {SEED_ENV}={seed} {SECS_ENV}={secs}");
    let mut extra = DEBUG_ON.to_vec();
    extra.extend_from_slice(&["--threads", "4"]);
    let mut kiln = TestServer::kiln(&extra);
    let recent = Arc::new(Recent::new(CONNS));
    let _watchdog = Watchdog::start(
        format!("the stress run (seed {seed})"),
        Duration::from_secs(secs) + 3 * REPLY_LIMIT,
        vec![kiln.pid()],
        recent.clone(),
    );
    let templates = templates(kiln.port);
    let mut admin = connect(kiln.port);
    for line in FIXTURE {
        admin.send_cmd(&words(line));
        admin.read_reply().expect("fixture");
    }
    drop(admin);

    let sh = Arc::new(Shared {
        seed,
        port: kiln.port,
        ids: (0..CONNS).map(|_| AtomicU64::new(0)).collect(),
        killed: Mutex::new(HashSet::new()),
        recent,
        templates,
    });
    let sync = std::env::var_os(SYNC_ENV).is_some_and(|v| v != "0");
    let end = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..CONNS)
        .map(|me| {
            let sh = sh.clone();
            std::thread::Builder::new()
                .name(format!("stress-{me}"))
                .spawn(move || {
                    let mut w = Worker::new(me, sh);
                    let mut steps = 0u64;
                    while Instant::now() < end {
                        let mut r = w.step();
                        if r.is_ok() && sync {
                            r = w.sync();
                        }
                        if r.is_err() {
                            let killed = w.sh.killed.lock().unwrap().contains(&w.id);
                            if !w.may_close && !killed {
                                w.fail("the server closed the connection, and nobody killed it");
                            }
                            w.reconnect();
                        }
                        steps += 1;
                    }
                    (steps, std::mem::take(&mut w.counts))
                })
                .unwrap()
        })
        .collect();
    let mut failures = Vec::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut steps = 0;
    for h in workers {
        match h.join() {
            Ok((n, c)) => {
                steps += n;
                for (k, v) in c {
                    *counts.entry(k).or_default() += v;
                }
            }
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        }
    }
    if !kiln.alive() {
        failures.push(format!(
            "the server died during the run: {:?}\n{}",
            kiln.wait_exit(Duration::ZERO),
            kiln.log_tail(40)
        ));
    }
    assert!(
        failures.is_empty(),
        "seed {seed} ({SEED_ENV}): {} connections failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let sent: u64 = counts
        .iter()
        .filter(|(k, _)| !k.contains('|'))
        .map(|(_, v)| v)
        .sum();
    eprintln!("stress: {steps} steps, {sent} commands on {CONNS} connections in {secs} s");

    // Every command of the table was sent (in a run long enough to draw them all).
    let missing: Vec<String> = command_list(kiln.port)
        .into_iter()
        .filter(|n| !counts.contains_key(n) && !NEVER.contains(&n.as_str()))
        .collect();
    if secs >= 30 {
        assert!(missing.is_empty(), "never sent: {missing:?}");
    } else if !missing.is_empty() {
        eprintln!("stress: never sent in this short run: {missing:?}");
    }

    // The server serves a newcomer, and once it has noticed every stress connection's end,
    // holds no other client and no blocked one (polled: closes are noticed asynchronously).
    let mut c = connect(kiln.port);
    assert_eq!(c.cmd(&["ping"]), "+PONG\r\n");
    let started = Instant::now();
    loop {
        let info = c.cmd(&["info", "clients"]);
        if info.contains("\r\nconnected_clients:1\r\n")
            && info.contains("\r\nblocked_clients:0\r\n")
        {
            break;
        }
        if started.elapsed() > REPLY_LIMIT {
            let list = c.cmd(&["client", "list"]);
            panic!("seed {seed}: other clients remain after the run: {info}\n{list}");
        }
    }
    assert!(c.cmd(&["debug", "digest"]).starts_with('+'));
    c.send_cmd(&["shutdown", "nosave"]);
    assert!(
        c.read_reply().is_none(),
        "SHUTDOWN replied instead of exiting"
    );
    let status = kiln
        .wait_exit(REPLY_LIMIT)
        .expect("the server did not exit after SHUTDOWN");
    assert!(
        status.success(),
        "seed {seed}: the server exited with {status} after SHUTDOWN"
    );
}

/// Commands per compared sequence, and how many sequences (each from the fixture) per 45 s
/// of `KILN_STRESS_SECS`.
const SEQUENCE_LEN: usize = 200;
const SEQUENCES_PER_45S: u64 = 16;

#[test]
fn deterministic_sequences_reply_like_redis() {
    let (seed, secs) = seed_and_secs();
    let sequences = SEQUENCES_PER_45S * (secs / 45).max(1);
    eprintln!("compared sequences: {SEED_ENV}={seed}, {sequences} sequences");
    let mut extra = DEBUG_ON.to_vec();
    extra.extend_from_slice(&["--threads", "2"]);
    let kiln = TestServer::kiln(&extra);
    let Some(redis) = TestServer::redis(DEBUG_ON) else {
        return;
    };
    let recent = Arc::new(Recent::new(1));
    let _watchdog = Watchdog::start(
        format!("the compared sequences (seed {seed})"),
        2 * REPLY_LIMIT + Duration::from_secs(5 * sequences),
        vec![kiln.pid(), redis.pid()],
        recent.clone(),
    );
    let templates = templates(kiln.port);
    let mut divergences = Vec::new();
    for seq in 0..sequences {
        let mut rng = Rng::new(seed ^ (seq + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut k = connect(kiln.port);
        let mut r = connect(redis.port);
        let mut script: Vec<String> = vec!["flushall".into()];
        script.extend(FIXTURE.iter().map(|l| l.to_string()));
        for c in [&mut k, &mut r] {
            for line in &script {
                c.send_cmd(&words(line));
                c.read_reply().expect("fixture");
            }
        }
        for _ in 0..SEQUENCE_LEN {
            let t = draw(&templates, &mut rng, true);
            let argv = generate(t, &mut rng, true);
            let dump_key = FAMILIES[rng.below(FAMILIES.len())][0];
            let line = show(&argv);
            recent.push(0, line.clone());
            script.push(line);
            let mut kr = call_filling_dump(&mut k, &argv, dump_key);
            let mut rr = call_filling_dump(&mut r, &argv, dump_key);
            if t.is(UNORDERED) {
                kr = kr.map(|b| sorted_array(&b));
                rr = rr.map(|b| sorted_array(&b));
            }
            if kr != rr {
                let text = |r: &Option<Vec<u8>>| {
                    r.as_ref().map_or("(connection closed)".into(), |b| {
                        String::from_utf8_lossy(b).into_owned()
                    })
                };
                let shown = if divergences.is_empty() {
                    script.len()
                } else {
                    10
                };
                divergences.push(format!(
                    "sequence {seq}, `{}`:\n  redis: {:?}\n  kiln:  {:?}\n  the commands up to it (a tests/diff script):\n{}",
                    script.last().unwrap(),
                    text(&rr),
                    text(&kr),
                    script[script.len().saturating_sub(shown)..]
                        .iter()
                        .map(|l| format!("    {l}\n"))
                        .collect::<String>()
                ));
                break;
            }
            if kr.is_none() {
                break;
            }
        }
    }
    assert!(
        divergences.is_empty(),
        "seed {seed} ({SEED_ENV}): {} of {sequences} sequences diverge from Redis:\n{}",
        divergences.len(),
        divergences.join("\n")
    );
}

/// An array reply with its elements in sorted order (shown as their debug form); any
/// other reply unchanged.
fn sorted_array(reply: &[u8]) -> Vec<u8> {
    match kiln_resp::decode(reply) {
        Ok((Value::Array(items), _)) => {
            let mut shown: Vec<String> = items.iter().map(|v| format!("{v:?}")).collect();
            shown.sort();
            format!("unordered array {shown:?}").into_bytes()
        }
        _ => reply.to_vec(),
    }
}

/// Runs one command on a connection, first taking the DUMP of `dump_key` where the command
/// takes a payload. The DUMP goes through a connection of its own: on `c` it could be
/// queued in a transaction, and its payload would then show in EXEC's reply (a set's
/// payload lists members in hash-table order, which differs between servers).
fn call_filling_dump(c: &mut Raw, argv: &[Vec<u8>], dump_key: &str) -> Option<Vec<u8>> {
    let mut argv = argv.to_vec();
    if let Some(i) = argv.iter().position(|a| a == b"$DUMP") {
        let port = c.stream.peer_addr().ok()?.port();
        let mut side = connect(port);
        side.send_cmd(&["dump", dump_key]);
        argv[i] = dump_payload(&side.read_reply()?);
    }
    c.send_cmd(&argv);
    c.read_reply()
}
