//! Safety over the whole command table: no command, queued in a transaction next to a write
//! to another key, can stop EXEC from answering or the server from serving others.
//!
//! For every name in `COMMAND LIST` there is at least one valid invocation below (a new
//! command without one fails the test). Each runs as `MULTI`, `SET other v`, the command,
//! `EXEC`, on a fresh connection over a fixed dataset, and again after `WATCH`ing its keys;
//! meanwhile other connections keep running commands (transactions that walk the keyspace
//! among them). Every read has a watchdog (a socket timeout), so a deadlock fails the test
//! instead of hanging it. Where the reply is deterministic, the whole transcript must equal
//! redis-server 7.0's.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{Raw, TestServer, DEBUG_ON};

/// One valid invocation per command (some have several). A leading `~` marks a reply that
/// differs run to run (times, ids, random picks, hash order): only its arrival is checked.
/// A leading `!` marks a command Redis 7.0 lacks (nothing to compare with).
const EXAMPLES: &[&str] = &[
    "append s x",
    "auth pw",
    "bgrewriteaof",
    "bgsave",
    "blmove l l2 LEFT RIGHT 0",
    "blmpop 0 1 l LEFT",
    "blpop l 0",
    "brpop nolist 0",
    "brpoplpush l l2 0",
    "bzmpop 0 1 z MIN",
    "bzpopmax z 0",
    "bzpopmin nozset 0",
    "client",
    "client getname",
    "~client help",
    "~client id",
    "~client info",
    "client kill ID 987654",
    "~client list",
    "client no-evict on",
    "!client no-touch on",
    "client reply on",
    "!client setinfo lib-name x",
    "client setname n",
    "client unblock 987654",
    "~command",
    "~command count",
    "~command docs get",
    "command getkeys set a b",
    "command getkeysandflags set a b",
    "~command help",
    "~command info get",
    "~command list",
    "config",
    "config get maxmemory",
    "~config help",
    "config resetstat",
    "config rewrite",
    "config set maxmemory-samples 5",
    "config set appendonly yes",
    "config set appendonly no",
    "copy s s2 DB 1",
    "copy l l3",
    "dbsize",
    "debug reload",
    "debug digest",
    "debug populate 20",
    "debug digest-value s l",
    "~debug object l",
    "decr s",
    "decrby s 2",
    "del s l",
    "discard",
    "~dump s",
    "echo hi",
    "exec",
    "exists s l nokey",
    "expire s 100",
    "expireat s 4000000000",
    "expiretime s",
    "!failover",
    "flushall",
    "flushdb",
    "get s",
    "getdel s",
    "getex s PERSIST",
    "getrange s 0 1",
    "getset s 5",
    "hdel h f1",
    "~hello 2",
    "hexists h f1",
    "hget h f1",
    "hgetall h",
    "hincrby h f1 2",
    "hincrbyfloat h f1 1.5",
    "hkeys h",
    "hlen h",
    "hmget h f1 f2",
    "hmset h f3 3",
    "~hrandfield h",
    "hscan h 0",
    "hset h f4 4",
    "hsetnx h f1 9",
    "hstrlen h f1",
    "hvals h",
    "incr s",
    "incrby s 3",
    "incrbyfloat s 1.5",
    "info keyspace",
    "~info",
    "keys st",
    "~keys *",
    "~lastsave",
    "lcs s s",
    "lindex l 0",
    "linsert l BEFORE b x",
    "llen l",
    "lmove l l2 LEFT RIGHT",
    "lmpop 1 l LEFT",
    "lpop l",
    "lpos l b",
    "lpush l x",
    "lpushx l y",
    "lrange l 0 -1",
    "lrem l 1 a",
    "lset l 0 q",
    "ltrim l 0 1",
    "mget s l",
    "move s 2",
    "mset a 1 b 2",
    "msetnx c 1 d 2",
    "multi",
    "object",
    "object encoding l",
    "object freq s",
    "~object help",
    "~object idletime s",
    "object refcount s",
    "persist s",
    "pexpire s 100000",
    "pexpireat s 4000000000000",
    "pexpiretime s",
    "ping",
    "psetex s 100000 v",
    "psubscribe p*",
    "psync ? -1",
    "pttl s",
    "publish ch m",
    "pubsub",
    "pubsub channels",
    "~pubsub help",
    "pubsub numpat",
    "pubsub numsub ch",
    "pubsub shardchannels",
    "pubsub shardnumsub ch",
    "punsubscribe",
    "quit",
    "~randomkey",
    "rename s s3",
    "renamenx s s4",
    "replconf listening-port 1",
    "replicaof 127.0.0.1 1",
    "reset",
    "restore s9 0 $DUMP",
    "~role",
    "rpop l",
    "rpoplpush l l2",
    "rpush l d",
    "rpushx l e",
    "sadd st d",
    "save",
    "~scan 0",
    "scard st",
    "~sdiff st nokey",
    "sdiffstore st2 st",
    "select 1",
    "set k v",
    "setex s 100 v",
    "setnx s v",
    "setrange s 1 x",
    "shutdown",
    "~sinter st",
    "sintercard 1 st",
    "sinterstore st3 st",
    "sismember st a",
    "slaveof 127.0.0.1 1",
    "~smembers st",
    "smismember st a z",
    "smove st st2 a",
    "~spop st",
    "spublish ch m",
    "~srandmember st",
    "srem st a",
    "~sscan st 0",
    "ssubscribe ch",
    "strlen s",
    "subscribe ch",
    "substr s 0 1",
    "~sunion st",
    "sunionstore st4 st",
    "sunsubscribe",
    "swapdb 0 1",
    "sync",
    "~time",
    "touch s l",
    "ttl s",
    "type l",
    "unlink s",
    "unsubscribe",
    "unwatch",
    "wait 0 0",
    "watch s",
    "xack x g 1-1",
    "xadd x 2-1 f v",
    "xautoclaim x g c2 0 0",
    "xclaim x g c2 0 1-1",
    "xdel x 1-1",
    "xgroup",
    "xgroup create x g2 0",
    "xgroup createconsumer x g c3",
    "xgroup delconsumer x g c",
    "xgroup destroy x g",
    "xgroup setid x g 0",
    "xinfo",
    "~xinfo consumers x g",
    "~xinfo groups x",
    "~xinfo stream x",
    "xlen x",
    "xpending x g",
    "xrange x - +",
    "xread STREAMS x 0",
    "xreadgroup GROUP g c STREAMS x 0",
    "xrevrange x + -",
    "xsetid x 5-0",
    "xtrim x MAXLEN 0",
    "zadd z 4 d",
    "zcard z",
    "zcount z 0 10",
    "zdiff 1 z",
    "zdiffstore z2 1 z",
    "zincrby z 1 a",
    "zinter 1 z",
    "zintercard 1 z",
    "zinterstore z3 1 z",
    "zlexcount z - +",
    "zmpop 1 z MIN",
    "zmscore z a b",
    "zpopmax z",
    "zpopmin z",
    "~zrandmember z",
    "zrange z 0 -1",
    "zrangebylex z - +",
    "zrangebyscore z 0 10",
    "zrangestore z4 z 0 -1",
    "zrank z a",
    "zrem z a",
    "zremrangebylex z - +",
    "zremrangebyrank z 0 0",
    "zremrangebyscore z 0 1",
    "zrevrange z 0 -1",
    "zrevrangebylex z + -",
    "zrevrangebyscore z 10 0",
    "zrevrank z a",
    "zscan z 0",
    "zscore z a",
    "zunion 1 z",
    "zunionstore z5 1 z",
];

/// The dataset each example starts from (after FLUSHALL).
const FIXTURE: &[&str] = &[
    "set s 10",
    "rpush l a b c",
    "hset h f1 1 f2 2",
    "sadd st a b c",
    "zadd z 1 a 2 b 3 c",
    "xadd x 1-1 f v",
    "xgroup create x g 0",
    "xreadgroup GROUP g c STREAMS x >",
    "set other 0",
];

/// Keys a `WATCH` covers in the watched variant: every key the examples use.
const WATCHED: &str = "watch s l l2 h st z x other k a b";

fn words(line: &str) -> Vec<Vec<u8>> {
    line.split(' ').map(|w| w.as_bytes().to_vec()).collect()
}

/// Connection that gives up (fails the test) if a reply takes longer than the watchdog.
fn connect(port: u16) -> Raw {
    let r = Raw::connect(port);
    r.stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    r
}

/// Resets a server to the fixture, through an admin connection, once background saves and
/// rewrites an earlier example started are over (polled, as INFO reports them).
fn reset(admin: &mut Raw) {
    loop {
        admin.send_cmd(&["info", "persistence"]);
        let info = String::from_utf8(admin.read_reply().expect("info")).unwrap();
        let busy = [
            "rdb_bgsave_in_progress:1",
            "aof_rewrite_in_progress:1",
            "aof_rewrite_scheduled:1",
        ];
        if !busy.iter().any(|b| info.contains(b)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for line in ["replicaof no one", "config set appendonly no", "flushall"] {
        admin.send_cmd(&words(line));
        admin
            .read_reply()
            .unwrap_or_else(|| panic!("server stopped answering `{line}`"));
    }
    for line in FIXTURE {
        admin.send_cmd(&words(line));
        admin.read_reply().expect("fixture");
    }
}

/// Runs one example in a transaction and returns the replies, in order, until EXEC's (or
/// until the connection closes: QUIT, a shutdown).
fn transcript(port: u16, admin: &mut Raw, example: &str, watch: bool) -> Vec<Vec<u8>> {
    reset(admin);
    let mut argv = words(example);
    if let Some(i) = argv.iter().position(|a| a == b"$DUMP") {
        admin.send_cmd(&["dump", "s"]);
        let reply = admin.read_reply().expect("dump");
        // `$<len>\r\n<payload>\r\n`
        let start = reply.iter().position(|&b| b == b'\n').unwrap() + 1;
        argv[i] = reply[start..reply.len() - 2].to_vec();
    }
    let mut c = connect(port);
    let mut sent = Vec::new();
    if watch {
        sent.push(words(WATCHED));
    }
    sent.push(words("multi"));
    sent.push(words("set other v"));
    sent.push(argv);
    sent.push(words("exec"));
    let mut replies = Vec::new();
    for args in &sent {
        c.send_cmd(args);
        match c.read_reply() {
            Some(r) => replies.push(r),
            None => break,
        }
    }
    replies
}

/// Other clients, on other connections, while the examples run: plain writes, and
/// transactions that walk the whole keyspace, so that lock conflicts actually happen.
fn background_load(port: u16, stop: Arc<AtomicBool>, served: Arc<AtomicU64>) {
    let mut c = connect(port);
    let mut i = 0u64;
    let scripts: &[&[&str]] = &[
        &["set bg1 1"],
        &["multi", "incr bg2", "info keyspace", "dbsize", "exec"],
        &["multi", "lpush bgl x", "scan 0", "keys bg*", "exec"],
        &["mset bg3 1 bg4 2 bg5 3"],
        &["multi", "set bg6 1", "debug digest", "exec"],
    ];
    while !stop.load(Ordering::Relaxed) {
        for line in scripts[(i % scripts.len() as u64) as usize] {
            c.send_cmd(&words(line));
            if c.read_reply().is_none() {
                // A background connection outlives nothing the examples do, except
                // FLUSHALL-free events like a replica switch: reconnect.
                c = connect(port);
            }
        }
        served.fetch_add(1, Ordering::Relaxed);
        i += 1;
    }
}

fn command_list(port: u16) -> BTreeSet<String> {
    let mut c = connect(port);
    c.send_cmd(&["command", "list"]);
    let reply = String::from_utf8(c.read_reply().unwrap()).unwrap();
    reply
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
        .map(str::to_string)
        .collect()
}

/// The full name an example exercises (`config|get`), as COMMAND LIST spells it.
fn example_name(example: &str, names: &BTreeSet<String>) -> String {
    let mut w = example.trim_start_matches(['~', '!']).split(' ');
    let first = w.next().unwrap().to_lowercase();
    if let Some(second) = w.next() {
        let full = format!("{first}|{}", second.to_lowercase());
        if names.contains(&full) {
            return full;
        }
    }
    first
}

#[test]
fn every_command_queued_in_a_transaction_answers_and_leaves_the_server_serving() {
    let mut extra = DEBUG_ON.to_vec();
    extra.extend_from_slice(&["--threads", "4"]);
    let kiln = TestServer::kiln(&extra);
    let redis = TestServer::redis(DEBUG_ON);

    let names = command_list(kiln.port);
    let covered: BTreeSet<String> = EXAMPLES.iter().map(|e| example_name(e, &names)).collect();
    let missing: Vec<&String> = names.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "commands without an example in every_command.rs: {missing:?}"
    );

    // First under load from other clients (where lock conflicts happen), then alone, with
    // the replies compared with Redis's.
    for loaded in [true, false] {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let load: Vec<_> = (0..if loaded { 2 } else { 0 })
            .map(|_| {
                let (stop, served, port) = (stop.clone(), served.clone(), kiln.port);
                std::thread::spawn(move || background_load(port, stop, served))
            })
            .collect();
        let redis = if loaded { None } else { redis.as_ref() };
        run_examples(kiln.port, redis);
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.join().expect("background client failed");
        }
        assert!(!loaded || served.load(Ordering::Relaxed) > 0);
    }
}

/// Runs every example (plain and watched) on Kiln, checks each answers and the server
/// still serves others, and compares the deterministic transcripts with `redis`'s.
fn run_examples(kiln_port: u16, redis: Option<&TestServer>) {
    let mut k_admin = connect(kiln_port);
    let mut r_admin = redis.map(|r| connect(r.port));
    let mut differences = Vec::new();
    for example in EXAMPLES {
        for watch in [false, true] {
            let k = transcript(
                kiln_port,
                &mut k_admin,
                example.trim_start_matches(['~', '!']),
                watch,
            );
            // EXEC (or the connection's end, for QUIT) was reached: the last command got
            // an answer, or the connection closed by the command's own doing.
            let expected = if watch { 5 } else { 4 };
            let closes = ["quit", "shutdown"].iter().any(|c| example.starts_with(c));
            assert!(
                k.len() == expected || (closes && !k.is_empty()),
                "`{example}` (watch: {watch}): only {} of {expected} replies: {:?}",
                k.len(),
                k.iter()
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .collect::<Vec<_>>()
            );
            // Everyone else is still served.
            let mut other = connect(kiln_port);
            assert_eq!(other.cmd(&["ping"]), "+PONG\r\n", "after `{example}`");
            if example.starts_with(['~', '!']) {
                continue;
            }
            if let (Some(redis), Some(r_admin)) = (redis, r_admin.as_mut()) {
                let r = transcript(redis.port, r_admin, example, watch);
                if k != r {
                    differences.push(format!(
                        "`{example}` (watch: {watch}):\n  kiln:  {:?}\n  redis: {:?}",
                        k.iter()
                            .map(|x| String::from_utf8_lossy(x).into_owned())
                            .collect::<Vec<_>>(),
                        r.iter()
                            .map(|x| String::from_utf8_lossy(x).into_owned())
                            .collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} transactions differ from Redis:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
