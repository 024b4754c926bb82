//! `maxmemory` and eviction on the real server: every policy keeps used memory near the
//! limit under writes of mixed types, sizes and TTLs, and evicts the keys it should
//! (volatile policies never a key without a TTL, volatile-ttl the nearest deadlines first,
//! LRU and LFU the keys nobody reads); many connections writing at once do not overshoot;
//! an evicted key raises `evicted`, invalidates WATCH and reaches a replica as a DEL; a
//! replica does not evict by itself. The replies Redis gives when nothing can be evicted
//! (`-OOM` for writes, in MULTI, in scripts) are compared byte for byte in
//! `tests/diff/keys/eviction.txt`.

mod support;

use redis::{Connection, Value};
use support::{run, TestServer};

fn info(c: &mut Connection, section: &str, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
        .trim()
        .parse()
        .unwrap()
}

/// A fresh server whose limit is `room` bytes above what it uses empty, under `policy`.
fn server(policy: &str, room: u64, extra: &[&str]) -> (TestServer, Connection, u64) {
    let s = TestServer::kiln(extra);
    let mut c = s.client();
    let limit = info(&mut c, "memory", "used_memory") + room;
    run(&mut c, &format!("CONFIG SET maxmemory-policy {policy}"));
    run(&mut c, &format!("CONFIG SET maxmemory {limit}"));
    (s, c, limit)
}

/// Writes keys `<prefix><i>` for i in `range`, 200 per pipeline, cycling through strings
/// of several sizes, hashes, lists and sets; `ttl(i)` gives a key's TTL in seconds (0:
/// none). Returns how many writes were refused with -OOM.
fn fill(
    c: &mut Connection,
    prefix: &str,
    range: std::ops::Range<usize>,
    ttl: impl Fn(usize) -> u64,
) -> usize {
    let mut refused = 0;
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(200) {
        let mut p = redis::pipe();
        for &i in chunk {
            let key = format!("{prefix}{i}");
            let v = "x".repeat(20 + (i * 37) % 400);
            match i % 5 {
                0 => p.cmd("HSET").arg(&key).arg("f1").arg(&v).arg("f2").arg(i),
                1 => p.cmd("RPUSH").arg(&key).arg(&v).arg(i).arg("z"),
                2 => p.cmd("SADD").arg(&key).arg(&v).arg(i),
                _ => p.cmd("SET").arg(&key).arg(&v),
            };
            let t = ttl(i);
            if t > 0 {
                p.cmd("EXPIRE").arg(&key).arg(t);
            }
        }
        let replies: Vec<redis::RedisResult<Value>> = match p.query::<Vec<Value>>(c) {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(_) => {
                // A refused command fails the whole pipeline: send one by one.
                chunk
                    .iter()
                    .map(|&i| {
                        redis::cmd("SET")
                            .arg(format!("{prefix}{i}"))
                            .arg("x")
                            .query(c)
                    })
                    .collect()
            }
        };
        refused += replies
            .iter()
            .filter(|r| matches!(r, Err(e) if e.code() == Some("OOM")))
            .count();
    }
    refused
}

fn exists(c: &mut Connection, prefix: &str, range: std::ops::Range<usize>) -> usize {
    let mut p = redis::pipe();
    for i in range {
        p.cmd("EXISTS").arg(format!("{prefix}{i}"));
    }
    let v: Vec<i64> = p.query(c).unwrap();
    v.into_iter().filter(|&n| n == 1).count()
}

/// The limit holds: used memory within 5% (plus the connection's own buffers) of it.
fn assert_near_limit(c: &mut Connection, limit: u64, policy: &str) {
    let used = info(c, "memory", "used_memory");
    assert!(
        used <= limit + limit / 20 + 256 * 1024,
        "{policy}: used_memory {used} is over maxmemory {limit}"
    );
    assert!(
        info(c, "stats", "evicted_keys") > 0,
        "{policy}: nothing evicted"
    );
}

const ROOM: u64 = 4 << 20;

/// Writes `n` keys `<prefix><i>` with RESTORE, their access data set to `option` (`IDLETIME
/// 1000`: unused for a while; `FREQ 0`: never used).
fn restore_old(c: &mut Connection, prefix: &str, n: usize, option: &str) {
    run(c, &format!("SET {prefix}model {}", "o".repeat(300)));
    let payload: Vec<u8> = redis::cmd("DUMP")
        .arg(format!("{prefix}model"))
        .query(c)
        .unwrap();
    let opt: Vec<&str> = option.split(' ').collect();
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("RESTORE")
                .arg(format!("{prefix}{i}"))
                .arg(0)
                .arg(&payload)
                .arg(&opt)
                .ignore();
        }
        p.query::<()>(c).unwrap();
    }
}

#[test]
fn allkeys_policies_hold_the_limit_and_evict_what_nobody_uses() {
    for (policy, old) in [
        ("allkeys-lru", "IDLETIME 1000"),
        ("allkeys-lfu", "FREQ 0"),
        ("allkeys-random", "FREQ 0"),
    ] {
        let (_s, mut c, limit) = server(policy, ROOM, &[]);
        // Half the room in keys nobody used for a while, then keys in use.
        restore_old(&mut c, "old:", 4000, old);
        fill(&mut c, "hot:", 0..1000, |_| 0);
        let mut p = redis::pipe();
        for _ in 0..3 {
            for i in 0..1000 {
                p.cmd("EXISTS").arg(format!("hot:{i}")).ignore();
            }
        }
        p.query::<()>(&mut c).unwrap();
        let mut round = 0;
        while info(&mut c, "stats", "evicted_keys") < 2000 {
            assert!(round < 100, "{policy}: too few evictions");
            let base = round * 500;
            assert_eq!(fill(&mut c, "new:", base..base + 500, |_| 0), 0, "{policy}");
            round += 1;
        }
        assert_near_limit(&mut c, limit, policy);
        let hot = exists(&mut c, "hot:", 0..1000);
        let old = exists(&mut c, "old:", 0..4000);
        if policy == "allkeys-random" {
            assert!(
                old < 4000 && hot < 1000,
                "{policy}: {hot} hot, {old} old left"
            );
        } else {
            assert!(
                hot >= 950 && old <= 2500,
                "{policy}: {hot}/1000 keys in use and {old}/4000 unused ones left"
            );
        }
    }
}

#[test]
fn volatile_policies_never_evict_keys_without_a_ttl() {
    for policy in [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        let (_s, mut c, limit) = server(policy, ROOM, &[]);
        fill(&mut c, "keep:", 0..500, |_| 0);
        // Deadlines grow with the index: volatile-ttl evicts the first ones first.
        for round in 0..30 {
            let base = round * 1000;
            let refused = fill(&mut c, "v:", base..base + 1000, |i| 10_000 + i as u64);
            assert_eq!(refused, 0, "{policy}");
        }
        assert_near_limit(&mut c, limit, policy);
        assert_eq!(exists(&mut c, "keep:", 0..500), 500, "{policy}");
        if policy == "volatile-ttl" {
            let early = exists(&mut c, "v:", 0..3000);
            let late = exists(&mut c, "v:", 27_000..30_000);
            assert!(
                early * 4 < late,
                "{policy}: {early} of the nearest deadlines left, {late} of the farthest"
            );
        }
        // With only keys without a TTL left, writes are refused (once the evictions that
        // ran out of time are done: until then a command goes on, as in Redis).
        run(&mut c, "CONFIG SET maxmemory 1");
        support::wait_until("writes refused", || {
            let e = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut c);
            e.is_err_and(|e| e.code() == Some("OOM"))
        });
        assert_eq!(exists(&mut c, "keep:", 0..500), 500, "{policy}");
    }
}

#[test]
fn noeviction_refuses_writes_and_serves_reads() {
    let (_s, mut c, _limit) = server("noeviction", ROOM, &[]);
    let mut refused = 0;
    let mut round = 0;
    while refused == 0 {
        assert!(round < 100, "never refused");
        refused = fill(&mut c, "k:", round * 1000..round * 1000 + 1000, |_| 0);
        round += 1;
    }
    assert_eq!(info(&mut c, "stats", "evicted_keys"), 0);
    let v: Option<Vec<u8>> = redis::cmd("GET").arg("k:3").query(&mut c).unwrap();
    assert!(v.is_some());
    let n: i64 = redis::cmd("DEL").arg("k:3").query(&mut c).unwrap();
    assert_eq!(n, 1);
    // The time spent over the limit runs while it lasts and is kept once it ends.
    let mut seen = 0;
    support::wait_until("a stretch over the limit", || {
        seen = info(&mut c, "stats", "current_eviction_exceeded_time");
        seen > 0
    });
    run(&mut c, "CONFIG SET maxmemory 0");
    support::wait_until("the stretch to end", || {
        info(&mut c, "stats", "current_eviction_exceeded_time") == 0
    });
    assert!(info(&mut c, "stats", "total_eviction_exceeded_time") >= seen);
}

#[test]
fn many_connections_writing_at_once_do_not_overshoot() {
    let (s, mut c, limit) = server("allkeys-lru", 8 << 20, &["--threads", "4"]);
    let port = s.port;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let mut w = s.client();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(info(&mut w, "memory", "used_memory"));
            }
            peak
        })
    };
    let writers: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                    .unwrap()
                    .get_connection()
                    .unwrap();
                let v = "v".repeat(1000);
                for batch in 0..40 {
                    let mut p = redis::pipe();
                    for i in 0..100 {
                        p.cmd("SET")
                            .arg(format!("w{t}:{batch}:{i}"))
                            .arg(&v)
                            .ignore();
                    }
                    p.query::<()>(&mut c).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = watcher.join().unwrap();
    assert_near_limit(&mut c, limit, "concurrent");
    // While writing, the limit plus what several threads can have in flight at once.
    assert!(
        peak <= limit + limit / 10 + (1 << 20),
        "peak {peak} against maxmemory {limit}"
    );
}

#[test]
fn an_evicted_key_is_an_event_a_watch_change_and_a_del_on_replicas() {
    let (s, mut c, _limit) = server("volatile-lru", ROOM, &["--notify-keyspace-events", "Ee"]);
    let replica = TestServer::kiln(&["--maxmemory", "1"]);
    let mut r = replica.client();
    run(&mut r, &format!("REPLICAOF 127.0.0.1 {}", s.port));
    let mut sub = s.client();
    let mut sub = sub.as_pubsub();
    sub.psubscribe("__keyevent@0__:evicted").unwrap();
    // The one key with a TTL: the one key evicted.
    run(&mut c, "SET first v EX 100");
    let mut w = s.client();
    run(&mut w, "WATCH first");
    let mut round = 0;
    while info(&mut c, "stats", "evicted_keys") == 0 {
        assert!(round < 100, "never evicted");
        fill(&mut c, "v:", round * 1000..round * 1000 + 1000, |_| 0);
        round += 1;
    }
    // Nothing else can go: lift the limit so the transaction below may queue its write.
    run(&mut c, "CONFIG SET maxmemory 0");
    let msg = sub.get_message().unwrap();
    let key: String = msg.get_payload().unwrap();
    assert_eq!(key, "first");
    run(&mut w, "MULTI");
    run(&mut w, "SET other 1");
    assert_eq!(run(&mut w, "EXEC"), Value::Nil);
    // The replica (which ignores its own maxmemory of 1 byte) follows by DELs only.
    support::wait_until("the replica to catch up", || {
        let link: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap();
        link.contains("master_link_status:up") && {
            let a: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
            let b: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
            a == b
        }
    });
    let gone: i64 = redis::cmd("EXISTS").arg("first").query(&mut r).unwrap();
    assert_eq!(gone, 0);
    assert_eq!(info(&mut r, "stats", "evicted_keys"), 0);
}
